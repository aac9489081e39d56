"""The beat-template view in a real browser (Debian chromium via Playwright) against the live
ward: a clinician loads the patient's templates (median waveforms, counts, labels), relabels a
whole template, confirms others, relabels one beat, adapts the model, sees the new version,
rolls back to the base model and re-activates the version. Every change reaches the database
through the API (reviews with the acting user and the template's name, audit rows).
"""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import func, select
from tests.dashboard.conftest import artefact_dirs, sign_in

from heartline.storage.adaptation_tables import BeatReview, PatientModel
from heartline.storage.engine import session_scope
from heartline.storage.security_tables import AuditLog


def _reviews(ward, **where) -> list[BeatReview]:
    with session_scope(ward.factory) as s:
        stmt = select(BeatReview).where(BeatReview.patient_id == "p01")
        for k, v in where.items():
            stmt = stmt.where(getattr(BeatReview, k) == v)
        rows = list(s.scalars(stmt))
        s.expunge_all()
        return rows


def _audits(ward, action: str) -> int:
    with session_scope(ward.factory) as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(AuditLog)
                .where(AuditLog.action == action, AuditLog.patient_id == "p01")
            )
        )


#: How long an expectation waits: every click goes to the API (templates recompute their medians
#: from the stored ECG), and the shared test machine can be slow.
T = 30_000


def test_review_templates_adapt_and_roll_back(ward, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1440, "height": 1100})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(page, ward.base)
    page.click("#station-grid .tile[data-patient-id='p01']")
    expect(page.locator("#app-view")).to_be_visible(timeout=T)
    active = page.locator("#model-active")
    expect(active).to_have_attribute("data-active", "base", timeout=T)
    status = page.locator("#tpl-status")

    # adapting before any review says what is missing, and stores nothing
    page.click("#tpl-adapt")
    expect(status).to_contain_text("no reviewed beats", timeout=T)
    expect(status).to_have_class("error", timeout=T)

    # the templates: median waveforms drawn, counts covering every beat of the window
    page.click("#tpl-load")
    grid = page.locator("#tpl-grid")
    expect(grid).not_to_have_attribute("data-templates", "0", timeout=T)
    cards = page.locator("#tpl-grid .tpl")
    n_templates = cards.count()
    assert n_templates >= 2
    counts = [int(c) for c in cards.evaluate_all("cs => cs.map(c => c.dataset.count)")]
    assert counts == sorted(counts, reverse=True) and counts[0] > 100
    assert int(cards.nth(0).locator("canvas").get_attribute("data-points")) > 100
    labels = cards.evaluate_all("cs => cs.map(c => c.dataset.label)")
    assert "N" in labels and "V" in labels, labels  # bed 1 has sinus rhythm and a VT run

    # relabel a whole template: the most premature template the model called N becomes S
    rr = [float(x) for x in cards.evaluate_all("cs => cs.map(c => c.dataset.rr)")]
    k = min((i for i in range(1, n_templates) if labels[i] == "N"), key=lambda i: rr[i])
    assert rr[k] < 0.9
    card = cards.nth(k)
    cluster, n_beats = card.get_attribute("data-cluster"), int(card.get_attribute("data-count"))
    card.locator("select.label").select_option("S")
    expect(card.locator("button.apply")).to_have_text("Relabel all", timeout=T)
    card.locator("button.apply").click()
    expect(status).to_contain_text(
        f"template {cluster}: {n_beats} beat(s) relabelled as S", timeout=T
    )
    rows = _reviews(ward, cluster=cluster)
    assert len(rows) == n_beats and {(r.new_label, r.actor) for r in rows} == {("S", "clin1")}
    assert {r.old_label for r in rows} == {"N"}
    assert _audits(ward, "relabel") == 1

    # the VT run's template confirmed V as a whole
    v_card = page.locator("#tpl-grid .tpl[data-label='V']").first
    v_cluster, v_n = v_card.get_attribute("data-cluster"), int(v_card.get_attribute("data-count"))
    v_card.locator("button.apply").click()
    expect(status).to_contain_text(f"template {v_cluster}: {v_n} beat(s) confirmed as V", timeout=T)
    assert {r.new_label for r in _reviews(ward, cluster=v_cluster)} == {"V"}

    # confirm the largest template (normal beats) as a whole
    big = page.locator("#tpl-grid .tpl").nth(0)
    assert big.get_attribute("data-label") == "N"
    big_cluster, big_n = big.get_attribute("data-cluster"), int(big.get_attribute("data-count"))
    expect(big.locator("button.apply")).to_have_text("Confirm all", timeout=T)
    big.locator("button.apply").click()
    expect(status).to_contain_text(
        f"template {big_cluster}: {big_n} beat(s) confirmed as N", timeout=T
    )
    rows = _reviews(ward, cluster=big_cluster)
    assert len(rows) == big_n and {r.new_label for r in rows} == {"N"}
    # (the reloaded templates regroup the window's beats, new ones included: counts are compared
    # in the database, not on the cards)

    # one beat of that template relabelled on its own
    page.locator(f"#tpl-grid .tpl[data-cluster='{big_cluster}'] button.beats").click()
    panel = page.locator("#tpl-beats")
    expect(panel).to_be_visible(timeout=T)
    first = panel.locator("tbody tr").first
    beat_id = int(first.get_attribute("data-beat-id"))
    first.locator("select").select_option("Q")
    first.locator("button.set").click()
    expect(panel.locator(f"tr[data-beat-id='{beat_id}']")).to_have_attribute(
        "data-reviewed", "Q", timeout=T
    )
    latest = max(_reviews(ward, beat_id=beat_id), key=lambda r: r.id)
    assert (latest.old_label, latest.new_label, latest.cluster) == ("N", "Q", None)
    page.click("#tpl-beats-close")

    # adapt: a new version, active, listed with who made it
    page.click("#tpl-adapt")
    expect(active).to_have_attribute("data-active", "1", timeout=120_000)
    expect(status).to_contain_text("version 1 is now active", timeout=T)
    row = page.locator("#model-table tr[data-version='1']")
    expect(row).to_have_attribute("data-active", "true", timeout=T)
    expect(row).to_contain_text("clin1", timeout=T)
    expect(row).to_contain_text("S ", timeout=T)
    expect(row).to_contain_text("V ", timeout=T)
    page.locator("#tpl-window").select_option("600")
    page.click("#tpl-load")
    expect(status).to_contain_text("templates of", timeout=T)
    view = page.locator("#templates-view")
    for d in artefact_dirs(tmp_path):  # the whole card, however tall (element screenshot)
        view.screenshot(path=str(d / "patient-templates.png"))
    with session_scope(ward.factory) as s:
        m = s.scalar(select(PatientModel).where(PatientModel.patient_id == "p01"))
        assert m.version == 1 and m.active and m.created_by == "clin1"

    # roll back to the base model, then re-activate the version
    page.click("#model-rollback")
    expect(active).to_have_attribute("data-active", "base", timeout=T)
    expect(row).to_have_attribute("data-active", "false", timeout=T)
    expect(page.locator("#model-rollback")).to_be_disabled(timeout=T)
    row.locator("button.activate").click()
    expect(active).to_have_attribute("data-active", "1", timeout=T)
    assert _audits(ward, "adapt") == 1 and _audits(ward, "rollback") == 2
    assert not errors, errors


def test_a_busy_database_is_retried_by_the_page(ward, browser):
    """A 503 (database busy: the request did not happen) is tried again after ``Retry-After``
    and the clinician sees the templates, not an error."""
    page = browser.new_page(viewport={"width": 1440, "height": 1100})
    seen: list[int] = []

    def busy_once(route):
        seen.append(1)
        if len(seen) == 1:
            route.fulfill(
                status=503,
                headers={"Retry-After": "1", "Content-Type": "application/json"},
                body='{"detail": "the database is busy or unreachable; retry shortly"}',
            )
        else:
            route.continue_()

    sign_in(page, ward.base)
    page.click("#station-grid .tile[data-patient-id='p01']")
    expect(page.locator("#app-view")).to_be_visible(timeout=T)
    page.route("**/api/v1/patients/p01/beat-templates*", busy_once)
    page.click("#tpl-load")
    expect(page.locator("#tpl-grid")).not_to_have_attribute("data-templates", "0", timeout=T)
    expect(page.locator("#tpl-status")).not_to_have_class("error", timeout=T)
    assert len(seen) == 2  # the 503, then the retry

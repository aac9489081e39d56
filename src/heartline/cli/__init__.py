"""Thin typer command-line interface; every command calls the library."""

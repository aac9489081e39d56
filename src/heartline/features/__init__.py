"""RR-interval and morphology features for the classical baselines.

References
----------
de Chazal P, O'Dwyer M, Reilly RB. Automatic classification of heartbeats using ECG morphology
and heartbeat interval features. IEEE Trans Biomed Eng 51(7):1196-1206 (2004).

Mondéjar-Guerra V, Novo J, Rouco J, Penedo MG, Ortega M. Heartbeat classification fusing
temporal and morphological information of ECGs via ensemble of classifiers. Biomed Signal
Process Control 47:41-48 (2019).
"""

from heartline.features.morphology import Features, beat_features, morphology_features

__all__ = ["Features", "beat_features", "morphology_features"]

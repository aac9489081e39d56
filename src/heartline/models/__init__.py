"""Beat classifiers: the hybrid CNN-LSTM, deep and classical baselines, and their registry."""

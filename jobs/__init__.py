"""The jobs the entry points run, importable for tests: training, the
evaluation of each new checkpoint, sampling, the scoring of samples into the
results tables, the whole-scene prediction of predict.py (resumable, with K
draws), and the self-check on a user's scene.
"""

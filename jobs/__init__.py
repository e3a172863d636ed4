"""The jobs the entrypoints run, importable for tests.

Modules: train (run.py --mode=train), eval_checkpoints (run.py
--mode=eval_*, each new checkpoint), sample (sample.py), predict
(predict.py, a whole scene tile by tile), predictor_flags (its model
flags, shared with tools.selfcheck), predict_workdir (its resumable work
directory), selfcheck (a fill scored on the user's own scene), checkpoints (what a run saves and how it comes back).
"""

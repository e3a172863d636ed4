"""How good an output is: metrics (per image and per set), baselines (from
an example's inputs alone) and results (the tables evaluate.py writes)."""

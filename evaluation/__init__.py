"""How good an output is: scores per image and per set, the classical fills
made from an example's inputs alone, the calibration of K draws, and the
rows and text of the results tables (the evaluation job writes them)."""

"""The command-line layer several commands share: flags that predict.py and
the tools define alike, and how their values become the libraries' plain
arguments. Only the commands import it.
"""

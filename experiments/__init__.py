"""Scientific experiments on cellbench's screens, each a module run as ``python -m experiments.NAME``.

Each writes its CSV under ``leaderboard/experiments/`` (the ``budget`` nox session runs them
all); their shared helpers (the mean and its 95 % interval, CORUM recall of an encoder on a
dataset, writing a CSV) are in :mod:`experiments._common`. Numbers are synthetic unless a
module says otherwise: never comparable with the paper's.
"""

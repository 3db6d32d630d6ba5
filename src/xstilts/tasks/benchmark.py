"""XTREME as a benchmark: its nine tasks, its four groups, and the folder names of its submissions.

One home for what both scorers need: :mod:`xstilts.xtreme` (the XTREME score from a results
store) and :mod:`xstilts.evaluation.submission` (XTREME's ``evaluate.py`` semantics on prediction
files). What each task averages into the score is the task's own ``leaderboard_metrics()``.
"""

from __future__ import annotations

#: The nine tasks, in XTREME's order.
TASKS = ("xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc", "tatoeba")
#: The four groups whose mean scores XTREME reports beside the overall score.
GROUPS = {
    "classification": ("pawsx", "xnli"),
    "structured prediction": ("udpos", "panx"),
    "question answering": ("xquad", "mlqa", "tydiqa"),
    "retrieval": ("bucc", "tatoeba"),
}
#: evaluate.py's keys for the groups (its output JSON says "tagging" and "qa").
EVALUATE_PY_GROUPS = {"classification": "classification", "structured prediction": "tagging",
                      "question answering": "qa", "retrieval": "retrieval"}
#: xstilts task name -> the folder evaluate.py reads it from (BUCC is ``bucc2018`` there).
SUBMISSION_NAMES = {task: ("bucc2018" if task == "bucc" else task) for task in TASKS}

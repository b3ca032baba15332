"""Evaluation on labelled datasets: tasks read from the real layouts, the suite runner behind
``dfr bench``, ``dfr evaluate`` and ``dfr demo``, and its reports."""

"""MLflow tag names more than one module sets or reads, defined once (no imports: a console
script's start-up may read them)."""

#: a composed hybrid's part run (its value: the part's name); run/parts.py sets it
PART_TAG = "hybridrec.part"
#: why a run failed (a diverged run, a refused or failed trial of a search)
FAILURE_TAG = "hybridrec.failure"

"""Every read the app makes, as pandas DataFrames (a few audio views return numpy arrays).

Each function takes `db` first: a `DbRef` (path + a cheap version stamp, so caches keyed on
the arguments refresh when a run finishes) or a plain path. Each opens the file read-only
for one query through `Store.read()`, which retries while a training process holds the
write lock, so the app keeps working while `python -m training train` writes. The app
shows complete runs only. SQL is parameterized; nothing here takes a file path from a user:
audio is found by (dataset_id, track_id) in the tracks table.
"""

# Every name the pages use, from one place: `from genre_core import queries as q`.
from genre_core.app.queries._db import DbRef  # noqa: F401
from genre_core.app.queries.faults import *  # noqa: F401,F403
from genre_core.app.queries.runs import *  # noqa: F401,F403
from genre_core.app.queries.tracks import *  # noqa: F401,F403
from genre_core.app.queries.multilabel import *  # noqa: F401,F403
from genre_core.app.queries.explanations import *  # noqa: F401,F403

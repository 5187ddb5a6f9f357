"""GenreLens core library: ingest, features, models, training, evaluation, analysis, storage.

Never imports streamlit; the app is a thin layer over `genre_core.app.queries`.
"""

__version__ = "0.1.0"

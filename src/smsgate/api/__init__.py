"""The HTTP surface: one FastAPI app, one module per dialect, our own API, the sandbox and the console."""

"""Serving: an OpenAI-compatible API with dynamic batching, and a chat web page (see docs/serving.md).

`create_app(engine, settings)` in app.py builds the FastAPI app; `serve()` / `ServerThread` in server.py run it.
"""

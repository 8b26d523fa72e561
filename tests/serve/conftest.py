"""Real servers on 127.0.0.1 and free ports, over one real engine on a tiny Qwen2-VL checkpoint."""

import pytest
from serve_helpers import start_server


@pytest.fixture(scope="session")
def engine(tiny_model):
    from vlmkit.infer import load_engine

    return load_engine(str(tiny_model("qwen2_vl")), batch_size=8)


@pytest.fixture(scope="session")
def server(engine):
    srv = start_server(engine, max_batch=8, batch_wait_ms=20)
    yield srv
    srv.__exit__()


@pytest.fixture(scope="session")
def keyed_server(engine):
    srv = start_server(engine, api_key="sesame-123")
    yield srv
    srv.__exit__()


@pytest.fixture
def client(server):
    import openai

    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=120)

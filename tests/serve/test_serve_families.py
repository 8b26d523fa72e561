"""The server is family-agnostic: an image question works on the non-Qwen families too, and a video is refused
with a clear 400 where the family takes none."""

import httpx
import pytest
from serve_helpers import MODEL, ask, mp4_data_url, png_data_url, start_server


@pytest.mark.parametrize("family", ["llava", "smolvlm"])
def test_image_questions_on_other_families(tiny_model, family, tmp_path):
    from vlmkit.infer import load_engine

    srv = start_server(load_engine(str(tiny_model(family)), batch_size=4))
    try:
        url = f"{srv.url}/v1/chat/completions"
        reply = httpx.post(
            url,
            json={"model": MODEL, "max_tokens": 4, "temperature": 0, "messages": [ask("What is it?", png_data_url())]},
            timeout=60,
        )
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] > 0
        video = {
            "role": "user",
            "content": [
                {"type": "video_url", "video_url": {"url": mp4_data_url(tmp_path)}},
                {"type": "text", "text": "What happens?"},
            ],
        }
        refused = httpx.post(url, json={"model": MODEL, "messages": [video]}, timeout=60)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "video_unsupported"
    finally:
        srv.__exit__()

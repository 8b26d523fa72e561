"""Request builders shared by the serving tests."""

import base64
import io

from synthetic_media import make_image, write_video

MODEL = "tiny-qwen2-vl"


def start_server(engine, **fields):
    """A ServerThread entered now; the caller exits it."""
    from vlmkit.serve.media_fetch import MediaPolicy
    from vlmkit.serve.server import ServerThread
    from vlmkit.serve.settings import ServeSettings

    policy = MediaPolicy(**fields.pop("media", {}))
    settings = ServeSettings(model_name=MODEL, media=policy, **{"max_tokens_cap": 64, **fields})
    return ServerThread(engine, settings).__enter__()


def png_data_url(width=64, height=48, seed=0) -> str:
    buffer = io.BytesIO()
    make_image(width, height, seed=seed).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def mp4_data_url(tmp_path, n_frames=4) -> str:
    path = write_video(tmp_path / "clip.mp4", n_frames=n_frames)
    return "data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode()


def ask(question: str, image: str | None = None) -> dict:
    content = (
        question
        if image is None
        else [{"type": "image_url", "image_url": {"url": image}}, {"type": "text", "text": question}]
    )
    return {"role": "user", "content": content}

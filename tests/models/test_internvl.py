"""InternVL, the family added as "an adapter file, a registry line and this test": everything else (loading,
groups, LoRA, collation, token counts, batched inference, merge) is covered by the family-parametrised tests."""

from synthetic_media import make_image

from vlmkit.models.loading import load_model


def test_images_are_tiled_by_aspect_ratio_and_wrapped(tiny_model):
    loaded = load_model(tiny_model("internvl"))
    family, processor = loaded.family, loaded.processor
    square, wide = family.image_tokens(processor, 32, 32), family.image_tokens(processor, 200, 40)
    assert square.features == processor.image_seq_length  # one tile, no thumbnail
    assert wide.features > 2 * square.features  # several tiles plus the thumbnail
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q?"}]}], tokenize=False
    )
    ids = processor(text=[text], images=[make_image(200, 40)], return_tensors="pt")["input_ids"][0].tolist()
    tokens = processor.tokenizer.convert_ids_to_tokens(ids)
    start, end = tokens.index("<img>"), tokens.index("</img>")
    assert tokens[start + 1 : end] == ["<IMG_CONTEXT>"] * wide.features

"""Images cross the model process's pipe as raw pixels after their Done message and come
out as they went in."""

from __future__ import annotations

import multiprocessing

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imagegate.worker.protocol import Done, Progress, receive_images, send_images

MODES = ("RGB", "RGBA", "L", "I;16", "F")


@st.composite
def images(draw: st.DrawFn) -> Image.Image:
    mode = draw(st.sampled_from(MODES))
    width, height = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    probe = Image.new(mode, (1, 1))
    size = width * height * len(probe.tobytes())
    return Image.frombytes(mode, (width, height), draw(st.binary(min_size=size, max_size=size)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(images(), max_size=3), max_size=3))
def test_images_come_out_of_the_pipe_as_they_went_in(batches: list[list[Image.Image]]) -> None:
    parent, child = multiprocessing.Pipe()
    try:
        send_images(child, "run-1", batches, 42)
        child.send(Progress("run-2", 1, 4))  # the next message is still a message
        done = parent.recv()
        assert isinstance(done, Done)
        assert (done.run_id, done.inference_ms) == ("run-1", 42)
        received = receive_images(parent, done)
        assert parent.recv() == Progress("run-2", 1, 4)
    finally:
        parent.close()
        child.close()
    assert [len(batch) for batch in received] == [len(batch) for batch in batches]
    for sent_batch, got_batch in zip(batches, received, strict=True):
        for sent, got in zip(sent_batch, got_batch, strict=True):
            assert (got.mode, got.size) == (sent.mode, sent.size)
            assert got.tobytes() == sent.tobytes()

"""Measure the media-decoder's peak memory (RSS) while it samples a large generated video.

Two measurements, each in a process of its own so that nothing else inflates the figure:

* ``decoder``: ``MediaDecoder.frames`` plus conversion to wire frames (what the decode workers do), alone;
* ``service``: the real ``python -m facemint_media_decoder`` process serving ``AnalyzeMedia`` for the video over
  HTTP, with the test suite's ``RecordingInferenceDouble`` standing in for the inference service; its RSS is polled
  from outside every 20 ms.

Usage::

    .venv/bin/python services/media-decoder/tools/measure_decode_rss.py --seconds 60 --sample-rate 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"
MIB = 1024 * 1024


def make_video(path: Path, seconds: int, fps: int, width: int, height: int) -> None:
    """Encode an H.264 MP4 with moving content (a scrolling gradient and moving blocks), GOP of 2 s."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([(xx * 255 // width), (yy * 255 // height), ((xx + yy) * 255 // (width + height))], axis=2)
    base = base.astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "g": str(2 * fps)})
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(seconds * fps):
            frame = np.roll(base, i * 4, axis=1)
            x = (i * 7) % (width - 200)
            frame[100:300, x : x + 200] = (255, 255, 255)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def decoder_child(path: Path, sample_rate: float) -> None:
    """Run inside a fresh process: decode and convert every sampled frame, print the figures as JSON."""
    from facemint_media_decoder.decode import DecodeLimits, MediaDecoder
    from facemint_media_decoder.inference import to_wire
    from facemint_media_decoder.sampling import SamplingWindow
    from facemint_media_decoder.sniff import Kind

    process = psutil.Process()
    decoder = MediaDecoder(DecodeLimits())
    baseline = process.memory_info().rss
    started = time.perf_counter()
    probe = decoder.probe(path, Kind.VIDEO)
    window = SamplingWindow(rate=sample_rate)
    frames = 0
    for frame in decoder.frames(path, probe, window):
        to_wire(frame, 64 * MIB, 95)
        frames += 1
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"baseline_rss": baseline, "peak_rss": peak, "frames": frames, "seconds": elapsed,
                      "expected_frames": probe.expected_frames(window)}))  # fmt: skip


async def measure_service(path: Path, sample_rate: float) -> dict[str, float]:
    """Run the service process against the video and poll its RSS while AnalyzeMedia streams."""
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    sys.path.insert(0, str(TESTS))
    from decoder_testkit import MediaServer, RecordingInferenceDouble

    from facemint.common.v1 import common_pb2
    from facemint.inference.v1 import inference_pb2_grpc
    from facemint.media_decoder.v1 import media_decoder_pb2 as pb
    from facemint.media_decoder.v1 import media_decoder_pb2_grpc

    limit = 64 * MIB
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", limit)])
    double = RecordingInferenceDouble()
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(double, server)
    health_servicer = health.aio.HealthServicer()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    media = MediaServer()
    media.start()
    url = media.serve("/video.mp4", path)
    env = {
        **os.environ,
        "FACEMINT_MEDIA_DECODER_INFERENCE__TARGET": f"127.0.0.1:{port}",
        "FACEMINT_MEDIA_DECODER_FETCH__ALLOW_CIDRS": '["127.0.0.1/32"]',
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "facemint_media_decoder"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        started = {}
        for line in child.stdout:
            started = json.loads(line)
            if started.get("message") == "started":
                break
        process = psutil.Process(child.pid)
        baseline = process.memory_info().rss
        peak = baseline
        async with grpc.aio.insecure_channel(f"127.0.0.1:{started['grpc_port']}") as channel:
            stub = media_decoder_pb2_grpc.MediaDecoderServiceStub(channel)
            request = pb.AnalyzeMediaRequest(
                media_url=url, kind=common_pb2.MEDIA_KIND_VIDEO, sample_rate=int(sample_rate)
            )
            call = stub.AnalyzeMedia(request)
            frames = 0
            begun = time.perf_counter()

            async def poll() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, process.memory_info().rss)
                    await asyncio.sleep(0.02)

            poller = asyncio.create_task(poll())
            async for item in call:
                frames += item.WhichOneof("item") == "frame"
            poller.cancel()
            elapsed = time.perf_counter() - begun
        return {"baseline_rss": baseline, "peak_rss": peak, "frames": frames, "seconds": elapsed}
    finally:
        child.terminate()
        child.wait(20)
        media.stop()
        await server.stop(1.0)


def main() -> None:
    """Generate the video, run both measurements and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--sample-rate", type=float, default=2.0)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        decoder_child(args.child, args.sample_rate)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "video.mp4"
        began = time.perf_counter()
        make_video(path, args.seconds, args.fps, args.width, args.height)
        print(f"video: {args.width}x{args.height}, {args.seconds} s at {args.fps} fps, H.264, "
              f"{path.stat().st_size / MIB:.1f} MiB, encoded in {time.perf_counter() - began:.1f} s")  # fmt: skip
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(path), "--sample-rate", str(args.sample_rate)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"decoder: {figures['frames']} frames (expected {figures['expected_frames']}) in "
              f"{figures['seconds']:.1f} s; RSS baseline {figures['baseline_rss'] / MIB:.0f} MiB, "
              f"peak {figures['peak_rss'] / MIB:.0f} MiB "
              f"(+{(figures['peak_rss'] - figures['baseline_rss']) / MIB:.0f} MiB)")  # fmt: skip
        service = asyncio.run(measure_service(path, args.sample_rate))
        print(f"service: {service['frames']} frames in {service['seconds']:.1f} s (fetch + decode + inference double); "
              f"RSS before the request {service['baseline_rss'] / MIB:.0f} MiB, "
              f"peak {service['peak_rss'] / MIB:.0f} MiB "
              f"(+{(service['peak_rss'] - service['baseline_rss']) / MIB:.0f} MiB)")  # fmt: skip


if __name__ == "__main__":
    main()

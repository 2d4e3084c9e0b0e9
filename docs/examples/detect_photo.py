"""Detect the faces of a local photo, GIF or video and print them (the Facemint Python SDK).

    pip install facemint-sdk            # or, in this repository: make setup
    export FACEMINT_URL=http://127.0.0.1:8080 FACEMINT_API_KEY=fm_...
    python detect_photo.py group.jpg --attributes age,gender,emotion

The file goes through a signed upload, the task is created and waited for (long poll); one line per face is printed.
"""

from __future__ import annotations

import argparse
import os
import sys

from facemint_sdk import FacemintAPIError, FacemintClient


def main() -> int:
    """Analyse the file named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("media", help="a local photo, GIF or video, or an http(s) URL")
    parser.add_argument("--attributes", default="age,gender,emotion,pose", help="comma-separated attributes")
    args = parser.parse_args()
    url, key = os.environ.get("FACEMINT_URL", "http://127.0.0.1:8080"), os.environ.get("FACEMINT_API_KEY", "")
    if not key:
        sys.exit("set FACEMINT_API_KEY (make run prints the development key)")
    with FacemintClient(key, url) as client:
        try:
            task = client.detect_file(args.media, attributes=[a for a in args.attributes.split(",") if a])
        except FacemintAPIError as exc:
            sys.exit(f"the API refused: {exc}")
    if task["status"] != "succeeded":
        sys.exit(f"task {task['task_id']} {task['status']}: {task.get('error')}")
    faces = 0
    for frame in task["result"]["frames"]:
        for face in frame["faces"]:
            faces += 1
            attributes = {k: v for k, v in face.get("attributes", {}).items() if k != "landmarks"}
            print(f"t={frame['timestamp']:.2f}s {face['face_id']} bbox={face['bbox']} {attributes}")
    print(f"{faces} face(s) in task {task['task_id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Enrol a person from one photo, then recognise them in another (the Facemint Python SDK).

    export FACEMINT_URL=http://127.0.0.1:8080 FACEMINT_API_KEY=fm_...
    python enrol_and_recognise.py alice-1.jpg group.jpg --person alice --name "Alice"

The reference photo must show exactly one clear face. The library (``--library``, default ``example-people``) is
created on first use. Each face of the second photo is printed with its best match, if any.
"""

from __future__ import annotations

import argparse
import os
import sys

from facemint_sdk import FacemintAPIError, FacemintClient


def main() -> int:
    """Enrol, recognise, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", help="a photo of the person (one face), file or URL")
    parser.add_argument("photo", help="the photo to recognise them in, file or URL")
    parser.add_argument("--library", default="example-people")
    parser.add_argument("--person", default="person-1", help="your id for the person")
    parser.add_argument("--name", default="", help="the person's display name")
    args = parser.parse_args()
    url, key = os.environ.get("FACEMINT_URL", "http://127.0.0.1:8080"), os.environ.get("FACEMINT_API_KEY", "")
    if not key:
        sys.exit("set FACEMINT_API_KEY (make run prints the development key)")
    with FacemintClient(key, url) as client:
        try:
            try:
                client.create_library(args.library, name="Example people")
            except FacemintAPIError as exc:
                if exc.code != "conflict":  # 409: it exists already, which is fine
                    raise
            face = client.enrol_face(args.library, args.person, args.reference, name=args.name or None)
            print(f"enrolled {face['person_id']} (face {face['face_id']}, quality {face['quality']})")
            task = client.detect_file(args.photo, recognize=1, library_id=args.library)
        except FacemintAPIError as exc:
            sys.exit(f"the API refused: {exc}")
    if task["status"] != "succeeded":
        sys.exit(f"task {task['task_id']} {task['status']}: {task.get('error')}")
    for face in task["result"]["frames"][0]["faces"]:
        matches = (face.get("identity") or {}).get("matches", [])
        who = f"{matches[0]['person_id']} (score {matches[0]['score']})" if matches else "no match"
        print(f"{face['face_id']} bbox={face['bbox']}: {who}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

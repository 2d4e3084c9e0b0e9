"""The ``facemint`` command line.

- ``facemint detect PHOTO_OR_VIDEO``, ``facemint library create|enrol|list|persons``, ``facemint compare A B``,
  ``facemint tasks list|get|cancel``: the public API with an API key (``--api-key`` or ``FACEMINT_API_KEY``); a
  local file is uploaded first, a URL is passed as is. ``--json`` prints the API's answers as JSON instead of tables.
- ``facemint up [...]``: the local platform (delegates to :func:`facemint_local.supervisor.main`).
- ``facemint admin ...``: accounts, keys and plans through the admin API. The gateway URL comes from ``--url`` or
  ``FACEMINT_URL`` (default ``http://127.0.0.1:8080``); the admin token from ``--token``, ``FACEMINT_ADMIN_TOKEN``
  or ``FACEMINT_GATEWAY_ADMIN_TOKEN``. ``--json`` prints the API's answers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from facemint_sdk import AdminClient, FacemintAPIError, FacemintClient
from facemint_sdk.models import Face, Task

DEFAULT_URL = "http://127.0.0.1:8080"
LIMIT_FLAGS = (
    ("requests_per_minute", "--requests-per-minute"),
    ("concurrent_tasks", "--concurrent-tasks"),
    ("monthly_minutes", "--monthly-minutes"),
)


def _print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _print_secret(key: dict[str, Any]) -> None:
    print(f"key_id:  {key['key_id']}")
    print(f"prefix:  {key['prefix']}")
    print(f"api key: {key['key']}")
    print("Store the API key now: it is shown once and cannot be recovered.")


def _limits(args: argparse.Namespace) -> dict[str, int | None]:
    return {name: getattr(args, name) for name, _ in LIMIT_FLAGS if getattr(args, name) is not None}


def _accounts_create(client: AdminClient, args: argparse.Namespace) -> Any:
    result = client.create_account(args.name, args.plan, _limits(args), create_key=not args.no_key)
    if not args.json:
        account = result["account"]
        print(f"account: {account['account_id']} ({account['name']}, plan {account['plan']})")
        if "api_key" in result:
            _print_secret(result["api_key"])
    return result


def _accounts_list(client: AdminClient, args: argparse.Namespace) -> Any:
    page = client.list_accounts(args.limit, args.cursor)
    if not args.json:
        rows = [{**a, **a["limits"]} for a in page["accounts"]]
        _print_table(rows, ("account_id", "name", "plan", "requests_per_minute", "concurrent_tasks", "monthly_minutes"))
        if page.get("next_cursor"):
            print(f"more: --cursor {page['next_cursor']}")
    return page


def _accounts_show(client: AdminClient, args: argparse.Namespace) -> Any:
    account = client.get_account(args.account_id)
    usage = client.account_usage(args.account_id)
    if not args.json:
        print(f"account: {account['account_id']} ({account['name']}, plan {account['plan']})")
        print(f"limits:  {json.dumps(account['limits'])}  overrides: {json.dumps(account['overrides'])}")
        minutes, tasks = usage["minutes"], usage["concurrent_tasks"]
        print(f"usage:   {minutes['used']} of {minutes['limit']} minutes; {tasks['active']} of {tasks['limit']} tasks")
    return {"account": account, "usage": usage}


def _accounts_update(client: AdminClient, args: argparse.Namespace) -> Any:
    limits = _limits(args)
    for name in args.clear or []:
        limits[name.replace("-", "_")] = None
    account = client.update_account(args.account_id, args.name, args.plan, limits or None)
    if not args.json:
        print(f"account: {account['account_id']} ({account['name']}, plan {account['plan']})")
        print(f"limits:  {json.dumps(account['limits'])}")
    return account


def _keys_create(client: AdminClient, args: argparse.Namespace) -> Any:
    key = client.create_key(args.account, args.name, args.expires_in)
    if not args.json:
        _print_secret(key)
    return key


def _keys_list(client: AdminClient, args: argparse.Namespace) -> Any:
    keys = client.list_keys(args.account)
    if not args.json:
        _print_table(keys, ("key_id", "prefix", "name", "status", "created_at", "last_used_at", "expires_at"))
    return keys


def _keys_rotate(client: AdminClient, args: argparse.Namespace) -> Any:
    key = client.rotate_key(args.key_id, args.grace)
    if not args.json:
        _print_secret(key)
        previous = key["previous"]
        print(f"previous key {previous['key_id']} stays valid until {previous['expires_at']}")
    return key


def _keys_revoke(client: AdminClient, args: argparse.Namespace) -> Any:
    key = client.revoke_key(args.key_id)
    if not args.json:
        print(f"revoked {key['key_id']} ({key['prefix']}) at {key['revoked_at']}")
    return key


def _plans_list(client: AdminClient, args: argparse.Namespace) -> Any:
    plans = client.plans()
    if not args.json:
        _print_table(plans, ("plan", "requests_per_minute", "concurrent_tasks", "monthly_minutes", "custom"))
    return plans


def _face_rows(task: Task) -> list[dict[str, Any]]:
    rows = []
    for frame in task.get("result", {}).get("frames", []):
        for face in frame.get("faces", []):
            rows.append({"time": frame.get("timestamp"), **_face_cells(face)})
    return rows


def _face_cells(face: Face) -> dict[str, Any]:
    attrs: dict[str, Any] = dict(face.get("attributes", {}))
    attrs.pop("landmarks", None)
    pose = attrs.pop("pose", None)
    if pose:
        attrs["pose"] = "/".join(f"{pose.get(k, 0):g}" for k in ("yaw", "pitch", "roll"))
    matches = (face.get("identity") or {}).get("matches", [])
    best = matches[0] if matches else None
    return {
        "face_id": face.get("face_id"),
        "bbox": ",".join(str(v) for v in face.get("bbox", [])),
        "confidence": face.get("confidence"),
        "attributes": " ".join(f"{k}={v}" for k, v in attrs.items()),
        "identity": f"{best.get('name') or best.get('person_id')} ({best.get('score')})" if best else "",
    }


def _detect(client: FacemintClient, args: argparse.Namespace) -> Any:
    options: dict[str, Any] = {"attributes": args.attributes or None, "metadata": None}
    if args.library:
        options.update(recognize=1, library_id=args.library, top_k=args.top_k)
    if args.sample_rate is not None:
        options["sample_rate"] = args.sample_rate
    task = client.detect_file(args.media, type=args.type, timeout=args.timeout, **options)
    if not args.json:
        if task.get("status") != "succeeded":
            error = task.get("error", {})
            print(f"task {task.get('task_id')} {task.get('status')}: {error.get('code')} {error.get('message')}")
        else:
            rows = _face_rows(task)
            columns = ("time", "face_id", "bbox", "confidence", "attributes")
            _print_table(rows, (*columns, "identity") if args.library else columns)
            print(f"{len(rows)} face(s); task {task.get('task_id')}")
    return task


def _tasks_list(client: FacemintClient, args: argparse.Namespace) -> Any:
    page = client.list_tasks(status=args.status, type=args.type, limit=args.limit, cursor=args.cursor)
    if not args.json:
        rows = [{**t, "faces": t.get("result", {}).get("summary", {}).get("total_faces")} for t in page["tasks"]]
        _print_table(rows, ("task_id", "type", "status", "faces", "created_at", "completed_at"))
        if page.get("next_cursor"):
            print(f"more: --cursor {page['next_cursor']}")
    return page


def _tasks_get(client: FacemintClient, args: argparse.Namespace) -> Any:
    task = client.get_task(args.task_id, wait=args.wait)
    if not args.json:
        print(f"task {task.get('task_id')} ({task.get('type')}): {task.get('status')}")
        if task.get("status") == "succeeded":
            _print_table(_face_rows(task), ("time", "face_id", "bbox", "confidence", "attributes", "identity"))
    return task


def _tasks_cancel(client: FacemintClient, args: argparse.Namespace) -> Any:
    task = client.cancel_task(args.task_id)
    if not args.json:
        print(f"task {task.get('task_id', args.task_id)}: {task.get('status')}")
    return task


def _library_create(client: FacemintClient, args: argparse.Namespace) -> Any:
    library = client.create_library(args.library_id, args.name, args.description)
    if not args.json:
        print(f"library {library['library_id']} created")
    return library


def _library_list(client: FacemintClient, args: argparse.Namespace) -> Any:
    page = client.list_libraries(args.limit, args.cursor)
    if not args.json:
        _print_table(page["libraries"], ("library_id", "name", "person_count", "face_count", "created_at"))
        if page.get("next_cursor"):
            print(f"more: --cursor {page['next_cursor']}")
    return page


def _library_enrol(client: FacemintClient, args: argparse.Namespace) -> Any:
    metadata = json.loads(args.metadata) if args.metadata else None
    face = client.enrol_face(args.library_id, args.person_id, args.image, args.name, metadata)
    if not args.json:
        print(f"enrolled face {face['face_id']} of {face['person_id']} (quality {face.get('quality')})")
    return face


def _library_persons(client: FacemintClient, args: argparse.Namespace) -> Any:
    page = client.list_persons(args.library_id, args.limit, args.cursor)
    if not args.json:
        _print_table(page["persons"], ("person_id", "name", "face_count", "created_at"))
    return page


def _compare(client: FacemintClient, args: argparse.Namespace) -> Any:
    result = client.compare(args.source, args.target)
    if not args.json:
        verdict = "same person" if result["is_same_person"] else "different people"
        print(f"{verdict}: score {result['score']} (threshold {result['threshold']})")
    return result


def _add_public_commands(commands: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("FACEMINT_URL", DEFAULT_URL), help="gateway base URL")
    common.add_argument(
        "--api-key", default=os.environ.get("FACEMINT_API_KEY", ""), help="API key (default: $FACEMINT_API_KEY)"
    )
    common.add_argument("--json", action="store_true", help="print the API's JSON answers")
    page = argparse.ArgumentParser(add_help=False)
    page.add_argument("--limit", type=int, default=20)
    page.add_argument("--cursor")

    p = commands.add_parser("detect", parents=[common], help="analyse a photo, GIF or video (file or URL)")
    p.add_argument("media", help="a local file (uploaded first) or an http(s) URL")
    p.add_argument("--attributes", type=lambda v: [a for a in v.split(",") if a], default=[],
                   help="comma-separated: age,gender,emotion,pose,glasses,mask,quality,landmarks")  # fmt: skip
    p.add_argument("--library", help="recognise faces against this library")
    p.add_argument("--top-k", type=int, default=1, help="matches per face with --library")
    p.add_argument("--type", choices=("image", "gif", "video"), help="default: from the file name")
    p.add_argument("--sample-rate", type=int, help="video frames analysed per second")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the result")
    p.set_defaults(run=_detect)

    library = commands.add_parser("library", help="face libraries").add_subparsers(dest="action", required=True)
    p = library.add_parser("create", parents=[common], help="create a library")
    p.add_argument("library_id")
    p.add_argument("--name")
    p.add_argument("--description")
    p.set_defaults(run=_library_create)
    p = library.add_parser("list", parents=[common, page], help="list your libraries")
    p.set_defaults(run=_library_list)
    p = library.add_parser("enrol", parents=[common], help="enrol a reference photo (one clear face) of a person")
    p.add_argument("library_id")
    p.add_argument("person_id")
    p.add_argument("image", help="a local file (uploaded first) or an http(s) URL")
    p.add_argument("--name", help="the person's display name")
    p.add_argument("--metadata", help="a JSON object stored with the person")
    p.set_defaults(run=_library_enrol)
    p = library.add_parser("persons", parents=[common, page], help="list a library's persons")
    p.add_argument("library_id")
    p.set_defaults(run=_library_persons)

    p = commands.add_parser("compare", parents=[common], help="1:1 compare the largest faces of two photos")
    p.add_argument("source", help="a local file or an http(s) URL")
    p.add_argument("target", help="a local file or an http(s) URL")
    p.set_defaults(run=_compare)

    tasks = commands.add_parser("tasks", help="your tasks").add_subparsers(dest="action", required=True)
    p = tasks.add_parser("list", parents=[common, page], help="list tasks, newest first")
    p.add_argument("--status", choices=("queued", "running", "succeeded", "failed", "cancelled"))
    p.add_argument("--type", choices=("image", "gif", "video"))
    p.set_defaults(run=_tasks_list)
    p = tasks.add_parser("get", parents=[common], help="show a task")
    p.add_argument("task_id")
    p.add_argument("--wait", type=float, default=0, help="long-poll up to this many seconds (at most 30)")
    p.set_defaults(run=_tasks_get)
    p = tasks.add_parser("cancel", parents=[common], help="cancel a queued or running task")
    p.add_argument("task_id")
    p.set_defaults(run=_tasks_cancel)


def _add_limit_flags(parser: argparse.ArgumentParser) -> None:
    for name, flag in LIMIT_FLAGS:
        parser.add_argument(flag, dest=name, type=int, help=f"override the plan's {name.replace('_', ' ')}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``facemint``."""
    parser = argparse.ArgumentParser(prog="facemint", description="Facemint command line.")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="{detect,library,compare,tasks,admin,up,migrate}"
    )
    _add_public_commands(commands)
    migrate = commands.add_parser("migrate", help="apply pending database migrations and exit")
    migrate.add_argument("--dsn", help="PostgreSQL DSN (default: $FACEMINT_MIGRATE_DATABASE__DSN)")
    up = commands.add_parser("up", help="run the whole platform on this machine (Ctrl-C stops it)", add_help=False)
    up.add_argument("up_args", nargs=argparse.REMAINDER)

    admin = commands.add_parser("admin", help="manage accounts, keys and plans through the admin API")
    admin.add_argument("--url", default=os.environ.get("FACEMINT_URL", DEFAULT_URL), help="gateway base URL")
    admin.add_argument(
        "--token",
        default=os.environ.get("FACEMINT_ADMIN_TOKEN") or os.environ.get("FACEMINT_GATEWAY_ADMIN_TOKEN", ""),
        help="admin token (default: $FACEMINT_ADMIN_TOKEN or $FACEMINT_GATEWAY_ADMIN_TOKEN)",
    )
    admin.add_argument("--json", action="store_true", help="print the API's JSON answers")
    groups = admin.add_subparsers(dest="group", required=True)

    accounts = groups.add_parser("accounts", help="accounts").add_subparsers(dest="action", required=True)
    p = accounts.add_parser("create", help="create an account and its first key")
    p.add_argument("--name", required=True)
    p.add_argument("--plan", help="plan name (default: the configured default plan)")
    p.add_argument("--no-key", action="store_true", help="do not create a first key")
    _add_limit_flags(p)
    p.set_defaults(run=_accounts_create)
    p = accounts.add_parser("list", help="list accounts")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--cursor")
    p.set_defaults(run=_accounts_list)
    p = accounts.add_parser("show", help="show an account, its limits and usage")
    p.add_argument("account_id")
    p.set_defaults(run=_accounts_show)
    p = accounts.add_parser("update", help="change an account's name, plan or limit overrides")
    p.add_argument("account_id")
    p.add_argument("--name")
    p.add_argument("--plan")
    _add_limit_flags(p)
    p.add_argument(
        "--clear", action="append", choices=[flag[2:] for _, flag in LIMIT_FLAGS], help="remove a limit override"
    )
    p.set_defaults(run=_accounts_update)

    keys = groups.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    p = keys.add_parser("create", help="create a key (its secret is printed once)")
    p.add_argument("--account", required=True, help="account id")
    p.add_argument("--name", default="")
    p.add_argument("--expires-in", type=int, help="lifetime in seconds")
    p.set_defaults(run=_keys_create)
    p = keys.add_parser("list", help="list an account's keys")
    p.add_argument("--account", required=True, help="account id")
    p.set_defaults(run=_keys_list)
    p = keys.add_parser("rotate", help="replace a key; the old one keeps working for the grace period")
    p.add_argument("key_id")
    p.add_argument("--grace", type=int, help="seconds the old key stays valid (default: the server's)")
    p.set_defaults(run=_keys_rotate)
    p = keys.add_parser("revoke", help="revoke a key now")
    p.add_argument("key_id")
    p.set_defaults(run=_keys_revoke)

    plans = groups.add_parser("plans", help="plans").add_subparsers(dest="action", required=True)
    plans.add_parser("list", help="list the configured plans").set_defaults(run=_plans_list)
    return parser


PLATFORM_ONLY = "error: 'facemint {}' needs a Facemint checkout (make setup); the SDK alone has the API commands"


def _run_up(argv: list[str]) -> int:
    try:
        from facemint_local.supervisor import main as up_main  # the local platform is only needed by this command
    except ModuleNotFoundError:
        print(PLATFORM_ONLY.format("up"), file=sys.stderr)
        return 2
    return int(up_main(argv) or 0)


def _run_migrate(dsn: str | None) -> int:
    """Create the services' roles and schemas, then apply each service's pending migrations as its role (the Helm
    chart's pre-install/pre-upgrade Job runs this). ``dsn``: an administrator's; each role's password comes from
    ``FACEMINT_MIGRATE_PASSWORD_<ROLE>`` (e.g. ``FACEMINT_MIGRATE_PASSWORD_FACEMINT_GATEWAY``), none when unset."""
    import asyncio

    try:
        from facemint_core.schemas import SCHEMAS, migrate_all  # only this command needs the database driver
    except ModuleNotFoundError:
        print(PLATFORM_ONLY.format("migrate"), file=sys.stderr)
        return 2

    dsn = dsn or os.environ.get("FACEMINT_MIGRATE_DATABASE__DSN", "")
    if not dsn:
        print("error: no database: pass --dsn or set FACEMINT_MIGRATE_DATABASE__DSN", file=sys.stderr)
        return 2
    passwords = {
        e.role: os.environ[f"FACEMINT_MIGRATE_PASSWORD_{e.role.upper()}"]
        for e in SCHEMAS
        if os.environ.get(f"FACEMINT_MIGRATE_PASSWORD_{e.role.upper()}")
    }
    try:
        applied = asyncio.run(migrate_all(dsn, passwords))
    except Exception as exc:  # noqa: BLE001 - any failure is reported and fails the Job
        print(f"error: migration failed: {exc}", file=sys.stderr)
        return 1
    done = [f"{service} {', '.join(versions)}" for service, versions in applied.items() if versions]
    print(f"applied: {'; '.join(done)}" if done else "database is up to date")
    return 0


def _run_public(args: argparse.Namespace) -> int:
    if not args.api_key:
        print("error: no API key: pass --api-key or set FACEMINT_API_KEY", file=sys.stderr)
        return 2
    run: Callable[[FacemintClient, argparse.Namespace], Any] = args.run
    with FacemintClient(args.api_key, args.url) as client:
        try:
            result = run(client, args)
        except (FacemintAPIError, TimeoutError, OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(result, indent=2))
    elif isinstance(result, dict) and result.get("status") in ("failed", "cancelled"):
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``facemint``; returns the exit status (1 on an API error or a task that did not succeed)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["up"]:
        return _run_up(args_list[1:])
    args = build_parser().parse_args(args_list)
    if args.command == "migrate":
        return _run_migrate(args.dsn)
    if args.command != "admin":
        return _run_public(args)
    if not args.token:
        print("error: no admin token: pass --token or set FACEMINT_ADMIN_TOKEN", file=sys.stderr)
        return 2
    run: Callable[[AdminClient, argparse.Namespace], Any] = args.run
    with AdminClient(args.token, args.url) as client:
        try:
            result = run(client, args)
        except FacemintAPIError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(result, indent=2))
    return 0

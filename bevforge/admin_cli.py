"""`python main.py user …`, `token …` and `db …`: manage who may sign in, and the database schema, from the shell.

    python main.py user add NAME --role ROLE [--nodes HLT,BK] [--password-stdin]
    python main.py user passwd NAME [--password-stdin]
    python main.py user list
    python main.py user disable NAME | enable NAME
    python main.py token create NAME --role ROLE [--nodes HLT,BK]
    python main.py token list
    python main.py token revoke ID
    python main.py db status | upgrade
There is no default password: the first admin is created here or on the first-run page.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from bevforge.audit import AuditLog
from bevforge.auth import ROLES, AuthService
from bevforge.cli import load_or_report, parse_args, shown_db
from bevforge.domain import Actor
from bevforge.errors import PASSWORD_MISMATCH, BevForgeError, Invalid
from bevforge.store import Database, create_schema, make_engine
from bevforge.store.migrate import SchemaTooNew
from bevforge.store.migrate import state as schema_state


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise Invalid("the passwords differ", code=PASSWORD_MISMATCH)
    return first


def _nodes(raw: str | None) -> list[str] | None:
    return [n.strip() for n in raw.split(",") if n.strip()] if raw else None


def _schema(action: str, db_url: str) -> int:
    """`db status`: where the schema stands; `db upgrade`: migrate it now (the server also does at start)."""
    engine = make_engine(db_url)
    try:
        if action == "upgrade":
            create_schema(engine)  # as the server's start does: migrations, then the schema_version row
        now = schema_state(engine)
    except SchemaTooNew as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    where = now.current or ("made before migrations (adopted at the next start or `db upgrade`)" if now.legacy
                            else "empty")
    print(f"schema revision: {where}\nnewest revision:  {now.head}\n"
          f"{'up to date' if now.up_to_date else 'an upgrade is due'}")
    return 0


def run(argv: list[str]) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS)
    common.add_argument("--db", default=argparse.SUPPRESS)
    common.add_argument("--data-dir", default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="python main.py", parents=[common])
    sub = parser.add_subparsers(dest="area", required=True)
    user = sub.add_parser("user", parents=[common]).add_subparsers(dest="action", required=True)
    add = user.add_parser("add", parents=[common])
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--nodes")
    add.add_argument("--password-stdin", action="store_true")
    passwd = user.add_parser("passwd", parents=[common])
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    user.add_parser("list", parents=[common])
    for verb in ("disable", "enable"):
        user.add_parser(verb, parents=[common]).add_argument("name")
    token = sub.add_parser("token", parents=[common]).add_subparsers(dest="action", required=True)
    create = token.add_parser("create", parents=[common])
    create.add_argument("name")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--nodes")
    token.add_parser("list", parents=[common])
    token.add_parser("revoke", parents=[common]).add_argument("id")
    schema = sub.add_parser("db", parents=[common]).add_subparsers(dest="action", required=True)
    schema.add_parser("status", parents=[common])
    schema.add_parser("upgrade", parents=[common])
    args = parser.parse_args(argv)

    passthrough = [x for flag in ("config", "db", "data_dir") if (v := getattr(args, flag, None))
                   for x in (f"--{flag.replace('_', '-')}", v)]
    settings = parse_args(passthrough)
    config = load_or_report(settings.config_path)
    if config is None:
        return 2
    db_url, db_from = settings.database(config)
    print(f"database: {shown_db(db_url)} ({db_from})", file=sys.stderr)
    if args.area == "db":
        return _schema(args.action, db_url)
    db = Database(db_url)
    create_schema(db.engine)
    audit = AuditLog(db)
    auth = AuthService(config, db, audit)
    shell = Actor(user=getpass.getuser(), station="shell", role="admin")
    try:
        if args.area == "user":
            if args.action == "add":
                row = auth.add_user(args.name, _password(args.password_stdin), args.role, _nodes(args.nodes))
                audit.record(shell, "user.create", target=row.username, new={"role": row.role, "nodes": row.nodes})
                print(f"user {row.username} added ({row.role}{', nodes ' + ','.join(row.nodes) if row.nodes else ''})")
            elif args.action == "passwd":
                auth.update_user(args.name, password=_password(args.password_stdin))
                audit.record(shell, "user.update", target=args.name, new={"password": "changed"})
                print(f"password of {args.name} changed; their sessions are ended")
            elif args.action in ("disable", "enable"):
                auth.update_user(args.name, disabled=args.action == "disable")
                audit.record(shell, f"user.{args.action}", target=args.name)
                print(f"user {args.name} {args.action}d")
            else:
                for u in auth.list_users():
                    nodes = ",".join(u["nodes"]) if u["nodes"] else "all nodes"
                    print(f"{u['username']:<20} {u['role']:<11} {nodes:<20} {'DISABLED' if u['disabled'] else ''}")
        elif args.action == "create":
            token_id, secret = auth.create_token(args.name, args.role, _nodes(args.nodes), shell.user)
            audit.record(shell, "token.create", target=token_id, new={"name": args.name, "role": args.role})
            print(f"token {token_id} ({args.name}, {args.role}) — shown once, store it now:\n{secret}")
        elif args.action == "list":
            for t in auth.list_tokens():
                state = f"revoked {t['revokedAt']}" if t["revokedAt"] else "active"
                print(f"{t['id']:<14} {t['name']:<20} {t['role']:<11} {state}")
        else:
            if not auth.revoke_token(args.id):
                print(f"no active token {args.id}", file=sys.stderr)
                return 1
            audit.record(shell, "token.revoke", target=args.id)
            print(f"token {args.id} revoked")
    except BevForgeError as exc:  # a refusal, or Unavailable: the database is locked, read-only or full
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    finally:
        db.close()
    return 0

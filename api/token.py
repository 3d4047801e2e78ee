"""Issue a bearer token for trying the API: ``python -m api.token --role org_admin --org ID``.

Signs with ``API_JWT_SECRET`` from the environment, like the API verifies.  In
production tokens come from the platform's identity service; this is for
development, demos and ops scripts.
"""

from __future__ import annotations

import argparse
import sys
from uuid import UUID

from api.auth import Role, issue_token
from worker.core.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.token", description=__doc__)
    parser.add_argument("--role", required=True, choices=[r.value for r in Role])
    parser.add_argument("--org", type=UUID, help="organisation id (org_admin, mentor)")
    parser.add_argument("--sub", help="subject; the peer mentor id for a mentor")
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    args = parser.parse_args(argv)
    secret = get_settings().api_jwt_secret
    if not secret:
        print("API_JWT_SECRET is not set", file=sys.stderr)
        return 2
    if args.role != Role.SERVICE and args.org is None:
        parser.error(f"--org is required for {args.role}")
    if args.role == Role.MENTOR:
        try:
            UUID(args.sub or "")
        except ValueError:
            parser.error("--sub must be the peer mentor id for a mentor")
    settings = get_settings()
    token = issue_token(
        secret,
        role=args.role,
        organisation_id=args.org,
        sub=args.sub or args.role,
        ttl_s=args.ttl,
        audience=settings.api_jwt_audience,
        issuer=settings.api_jwt_issuer,
    )
    print(token)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

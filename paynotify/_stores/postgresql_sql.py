"""The PostgreSQL store's schema, its migrations and its statements, built once per schema."""

# SQL is built with f-strings only from constants and the schema name, which is checked to be a
# plain identifier and quoted; every value goes in as a bind parameter.
# ruff: noqa: S608

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from paynotify._stores.base import RECORDABLE
from paynotify._stores.sql import attempts_after, leave, sql_in, sql_sources, with_lease
from paynotify._stores.transitions import (
    CLAIM,
    COMPLETE,
    DEAD_LETTER,
    RELEASE,
    REPLAY,
    RESCHEDULE,
    RETRY,
)

__all__ = [
    "BYTEWISE",
    "COLUMNS",
    "DUE",
    "DUE_WORK",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SEARCH_IDS",
    "Statements",
    "lock_key",
    "numbered",
    "quote",
]


# When a PENDING event is due, or when an IN_FLIGHT lease runs out. The partial index
# paynotify_events_due is on exactly this expression (keep the two texts identical).
DUE = "(CASE WHEN state = 'pending' THEN COALESCE(next_attempt_at, 0) ELSE COALESCE(lease_until, 0) END)"
DUE_WORK = "state IN ('pending', 'in_flight')"

BYTEWISE = 'event_id COLLATE "C"'
COLUMNS = (
    "event_id, account, provider, kind, status, order_id, state, attempts, created_at, updated_at,"
    " next_attempt_at, last_error, done_subscribers, result_json"
)


def _migration_1(schema: str) -> Sequence[str]:
    events = f"{schema}.paynotify_events"
    return (
        f"""CREATE TABLE {events} (
            event_id         text PRIMARY KEY,
            account          text NOT NULL,
            provider         text NOT NULL,
            kind             text NOT NULL,
            status           text NOT NULL,
            order_id         text NOT NULL,
            state            text NOT NULL,
            token            text,
            lease_until      double precision,
            attempts         integer NOT NULL DEFAULT 0,
            created_at       double precision NOT NULL,
            updated_at       double precision NOT NULL,
            next_attempt_at  double precision,
            last_error       text,
            done_subscribers text[] NOT NULL DEFAULT '{{}}',
            result_json      text NOT NULL
        )""",
        f"CREATE INDEX paynotify_events_order ON {events} (account, order_id)",
        f"CREATE INDEX paynotify_events_created ON {events} (created_at)",
        f"CREATE INDEX paynotify_events_due ON {events} ({DUE}) WHERE {DUE_WORK}",
        f"CREATE INDEX paynotify_events_purge ON {events} (state, updated_at)",
    )


def _migration_2(schema: str) -> Sequence[str]:
    """The expectations (the sweeper's); due_at is next_due while free, lease_until while leased."""
    table = f"{schema}.paynotify_expectations"
    return (
        f"""CREATE TABLE {table} (
            account     text NOT NULL,
            order_id    text NOT NULL,
            refund_id   text NOT NULL,
            amount      text NOT NULL,
            currency    text NOT NULL,
            created_at  double precision NOT NULL,
            updated_at  double precision NOT NULL,
            until_at    double precision NOT NULL,
            paid_at     double precision,
            next_due    double precision NOT NULL,
            attempts    integer NOT NULL,
            state       text NOT NULL,
            outcome     text,
            lease_token text,
            lease_until double precision,
            last_error  text,
            due_at      double precision,
            PRIMARY KEY (account, order_id, refund_id)
        )""",
        f"CREATE INDEX paynotify_expectations_due ON {table} (due_at) WHERE due_at IS NOT NULL",
        f"CREATE INDEX paynotify_expectations_created ON {table} (created_at)",
    )


SEARCH_IDS = tuple(
    f"(result_json::jsonb ->> '{name}')" for name in ("transaction_id", "refund_id", "provider_refund_id")
)
"""The search's id expressions, as indexed by migration 3 (keep the texts identical)."""


def _migration_3(schema: str) -> Sequence[str]:
    """The search's indexes (find(search=...)): expression indexes read the ids from the stored
    result, so no write statement changes and existing rows are indexed as the index is built. The
    order index is text_pattern_ops, byte order whatever the collation, for prefix ranges."""
    events = f"{schema}.paynotify_events"
    names = ("transaction", "refund", "provider_refund")
    return (
        f"CREATE INDEX paynotify_events_order_lower ON {events} (lower(order_id) text_pattern_ops)",
        *(
            f"CREATE INDEX paynotify_events_{name} ON {events} ({expression}) WHERE {expression} IS NOT NULL"
            for name, expression in zip(names, SEARCH_IDS, strict=True)
        ),
    )


def _migration_4(schema: str) -> Sequence[str]:
    """Each event's attempt history (deleted with the event, by every purge) and the audit log, whose
    ids sort in time order byte by byte (paynotify._stores.history)."""
    events = f"{schema}.paynotify_events"
    return (
        f"""CREATE TABLE {schema}.paynotify_attempts (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_id    text NOT NULL REFERENCES {events} (event_id) ON DELETE CASCADE,
            started_at  double precision NOT NULL,
            finished_at double precision NOT NULL,
            outcome     text NOT NULL,
            error       text,
            instance    text NOT NULL,
            operator    text
        )""",
        f"CREATE INDEX paynotify_attempts_event ON {schema}.paynotify_attempts (event_id, id)",
        f"""CREATE TABLE {schema}.paynotify_audit (
            id          text COLLATE "C" PRIMARY KEY,
            at          double precision NOT NULL,
            operator    text NOT NULL,
            action      text NOT NULL,
            event_ids   text[] NOT NULL,
            count       integer NOT NULL,
            outcome     text NOT NULL,
            selection   text
        )""",
        f"CREATE INDEX paynotify_audit_at ON {schema}.paynotify_audit (at)",
    )


def _migration_5(schema: str) -> Sequence[str]:
    """The reconciliation reports (one per account and Beijing day, replaced by a later run) and
    their leases (one per account and day across instances)."""
    reports = f"{schema}.paynotify_reconciliations"
    leases = f"{schema}.paynotify_reconciliation_leases"
    return (
        f"""CREATE TABLE IF NOT EXISTS {reports} (
            account     text NOT NULL,
            day         text NOT NULL,
            provider    text NOT NULL,
            run_at      double precision NOT NULL,
            heal        boolean NOT NULL,
            healed      integer NOT NULL,
            counts_json text NOT NULL,
            report_json text NOT NULL,
            PRIMARY KEY (account, day)
        )""",
        f"CREATE INDEX IF NOT EXISTS paynotify_reconciliations_day ON {reports} (day, account)",
        f"""CREATE TABLE IF NOT EXISTS {leases} (
            account     text NOT NULL,
            day         text NOT NULL,
            token       text NOT NULL,
            lease_until double precision NOT NULL,
            PRIMARY KEY (account, day)
        )""",
    )


def _migration_6(schema: str) -> Sequence[str]:
    """Room on every page for the updates of an event (its claim's takeover, each subscriber's
    record, its completion): an update whose new version fits on the row's page is cheaper, and one
    that changes no indexed column is HOT (no index entry, no index bloat). Pages written before keep
    their packing until rewritten (VACUUM FULL, pg_repack); nothing is rewritten here."""
    return (f"ALTER TABLE {schema}.paynotify_events SET (fillfactor = {EVENTS_FILLFACTOR})",)


EVENTS_FILLFACTOR = 80

MIGRATIONS: list[Callable[[str], Sequence[str]]] = [
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
    _migration_5,
    _migration_6,
]
"""Ordered: migration i takes the schema from version i to i + 1. Each gets the quoted schema name
and returns its statements; all of a start-up's migrations run in one transaction. Append only."""

SCHEMA_VERSION = len(MIGRATIONS)


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def lock_key(schema: str) -> int:
    """A stable 64-bit advisory lock key per schema, so schemas migrate independently."""
    digest = hashlib.blake2b(f"paynotify schema {schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def numbered(conditions: Sequence[str], values: Sequence[object], args: list[object]) -> list[str]:
    """`?`-style conditions (from `sql_filters`) with asyncpg's `$n`, their values appended to `args`."""
    pending = list(values)
    numbered = []
    for condition in conditions:
        head, *rest = condition.split("?")
        for part in rest:
            args.append(pending.pop(0))
            head += f"${len(args)}{part}"
        numbered.append(head)
    return numbered


class Statements:
    """The SQL of one store, built once; asyncpg prepares each text once per connection."""

    def __init__(self, events: str) -> None:
        self._events = events
        # One round trip: insert, or take over a claimable event (ON CONFLICT DO UPDATE locks the
        # current row and tests it, not the snapshot, so there is one winner), or else report the
        # state. The report comes from the statement's snapshot: when it shows no row (inserted by a
        # transaction that committed after the snapshot) or a claimable one (changed meanwhile),
        # claim() runs the statement again.
        # The claim's commit is asynchronous (set_config(..., true): this transaction only, so the
        # pooled session keeps its settings): the completion's synchronous commit flushes the WAL up
        # to itself, the claim's commit record included, before anything is acknowledged. See
        # docs/stores.md. The setting is evaluated in the INSERT's one-row source, which always runs.
        self.claim = f"""
            WITH claimed AS (
                INSERT INTO {events} AS e (event_id, account, provider, kind, status, order_id, state,
                    token, lease_until, attempts, created_at, updated_at, result_json)
                SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, 'in_flight', $7::text,
                       $8::double precision, 1, $9::double precision, $9::double precision, $10::text
                  FROM (SELECT set_config('synchronous_commit', 'off', true)) AS asynchronous_commit
                ON CONFLICT (event_id) DO UPDATE
                    SET state = 'in_flight', token = EXCLUDED.token, lease_until = EXCLUDED.lease_until,
                        attempts = e.attempts + 1, updated_at = EXCLUDED.updated_at, next_attempt_at = NULL
                    WHERE {sql_sources(CLAIM, now="$9", table="e.")}
                RETURNING e.done_subscribers, e.attempts
            )
            SELECT NULL::text AS state, NULL::double precision AS lease_until, done_subscribers, attempts
              FROM claimed
            UNION ALL
            SELECT state, lease_until, NULL::text[], NULL::integer
              FROM {events}
             WHERE event_id = $1 AND NOT EXISTS (SELECT FROM claimed)"""
        self.subscriber_done = f"""
            UPDATE {events} SET done_subscribers = array_append(done_subscribers, $2)
             WHERE event_id = $1 AND NOT ($2 = ANY (done_subscribers))"""
        self.complete = f"""
            UPDATE {events}
               SET {leave(COMPLETE)}, next_attempt_at = NULL,
                   last_error = NULL, updated_at = $2,
                   done_subscribers = CASE WHEN cardinality(done_subscribers) = 0 THEN $3::text[]
                       ELSE ARRAY(SELECT DISTINCT unnest(done_subscribers || $3::text[])) END
             WHERE event_id = $1 AND {sql_sources(COMPLETE)}"""
        insert = f"""
            INSERT INTO {events} AS e (event_id, account, provider, kind, status, order_id, state,
                last_error, attempts, created_at, updated_at, result_json)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $9, $10)"""
        self.record = {
            state: insert
            + (
                f" ON CONFLICT (event_id) DO UPDATE SET last_error = EXCLUDED.last_error,"
                f" updated_at = EXCLUDED.updated_at WHERE e.state IN ({sql_in(overwritable)})"
                if overwritable
                else " ON CONFLICT (event_id) DO NOTHING"
            )
            + " RETURNING true"
            for state, overwritable in RECORDABLE.items()
        }
        self.release = f"""
            UPDATE {events}
               SET {leave(RELEASE)}, last_error = $3, updated_at = $4
             WHERE event_id = $1 AND {with_lease(RELEASE, placeholders=("$2", "$4"))}"""
        self.enqueue = f"""
            INSERT INTO {events} (event_id, account, provider, kind, status, order_id, state, attempts,
                created_at, updated_at, next_attempt_at, result_json)
            VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7, $8)
            ON CONFLICT (event_id) DO NOTHING
            RETURNING true"""
        # The inner SELECT uses the partial index paynotify_events_due in due order; SKIP LOCKED
        # leaves events another dispatcher is taking, and FOR UPDATE re-checks a row changed since
        # the snapshot. RETURNING has no order, so acquire() sorts by the due time it returns.
        self.acquire = f"""
            UPDATE {events} AS e
               SET state = 'in_flight', token = replace(gen_random_uuid()::text, '-', ''),
                   lease_until = $3, attempts = e.attempts + 1, updated_at = $1, next_attempt_at = NULL
              FROM (SELECT event_id, {DUE} AS due_at
                      FROM {events}
                     WHERE {DUE_WORK} AND {DUE} <= $1
                     ORDER BY {DUE}
                     LIMIT $2
                       FOR UPDATE SKIP LOCKED) AS due
             WHERE e.event_id = due.event_id
            RETURNING {", ".join(f"e.{c.strip()}" for c in COLUMNS.split(","))}, e.token, due.due_at"""
        self.reschedule = f"""
            UPDATE {events}
               SET {leave(RESCHEDULE)}, next_attempt_at = $3, last_error = $4, updated_at = $5
             WHERE event_id = $1 AND {with_lease(RESCHEDULE, placeholders=("$2", "$5"))}"""
        self.dead_letter = f"""
            UPDATE {events}
               SET {leave(DEAD_LETTER)}, next_attempt_at = NULL, last_error = $3, updated_at = $4
             WHERE event_id = $1 AND {with_lease(DEAD_LETTER, placeholders=("$2", "$4"))}"""
        self.get = f"SELECT {COLUMNS} FROM {events} WHERE event_id = $1"
        self.exists = f"SELECT true FROM {events} WHERE event_id = $1"
        # As the memory store: anything not DONE and not under a live lease is retried (an
        # IN_FLIGHT event whose lease ran out counts); a replay takes DONE events too and forgets
        # which subscribers ran.
        forget = ", done_subscribers = '{}'::text[]"
        self.requeue = {
            transition is REPLAY: f"""
            UPDATE {events}
               SET {leave(transition)}, {attempts_after(transition)}, next_attempt_at = $2,
                   updated_at = $2{forget if transition.forgets_subscribers else ""}
             WHERE event_id = $1 AND {sql_sources(transition, now="$2")}
            RETURNING true"""
            for transition in (RETRY, REPLAY)
        }
        self.purge = self.purge_where([])

    def purge_where(self, conditions: Sequence[str]) -> str:
        """The batched purge ($1 the states, $2 before, $3 the batch), with more conditions from $4 on."""
        more = "".join(f" AND {condition}" for condition in conditions)
        # FOR UPDATE SKIP LOCKED: a row being changed (a replay of a DONE event) is left alone, and
        # a row changed since the snapshot is re-checked against the conditions.
        return f"""
            DELETE FROM {self._events}
             WHERE event_id = ANY (ARRAY(
                    SELECT event_id FROM {self._events}
                     WHERE state = ANY($1::text[]) AND updated_at < $2{more}
                     LIMIT $3
                       FOR UPDATE SKIP LOCKED))"""

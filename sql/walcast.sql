-- walcast.sql: the database side of walcast: the emit context, and snapshot tokens.
--
-- Installs schema "walcast" with:
--   walcast.set_context(actor_user_id, project_id, tenant_id, skip_emit, is_local)
--   walcast.clear_context()
--   walcast.track(regclass) / walcast.untrack(regclass)
--   walcast.snapshot()       a token for the calling transaction's snapshot
--   walcast.emit_context()   the trigger function track() attaches
--   walcast.tracked          view: the tables track() has attached the trigger to
--
-- How the context reaches walcast: set_context() stores the context as compact JSON text
--   {"actorUserId":"u1","projectId":"p1","tenantId":"acme","skipEmit":false}
-- (exactly these keys, in this order; absent values are null) in the custom setting
-- walcast.context. A statement-level BEFORE INSERT/UPDATE/DELETE trigger on every tracked
-- table writes the context in force as a transactional logical message
--   pg_logical_emit_message(true, 'walcast', <context json>)
-- before the statement's rows, so it lands in the WAL ahead of the changes it describes and
-- rolls back with them. The daemon reads it from the wal2json stream (an "M" line).
--
-- Contracts:
--   * Once per transaction per distinct context: the last context written in this transaction
--     is remembered in the transaction-local setting walcast.emitted, and a message is
--     written only when the context in force differs from it. 500 single-row INSERTs under
--     one context write one message; contexts A, B, A write three.
--   * No context in force -> no message (the daemon then emits nothing for those changes).
--   * Savepoints: both settings are GUCs, so ROLLBACK TO SAVEPOINT reverts them together with
--     the messages written inside the savepoint (logical decoding drops an aborted
--     subtransaction's messages with its rows). The next write re-emits if needed.
--   * is_local => true (default) scopes the context to the current transaction, which is what
--     pooled connections need; is_local => false keeps it for the session until
--     clear_context() or another set_context(). A local context overrides the session one
--     for the rest of its transaction.
--   * Limitation: clear_context() in the middle of a transaction writes nothing, so changes
--     after it, in the same transaction, still follow the last context written before it.
--     Set skip_emit => true instead to silence a transaction.
--   * The message prefix is 'walcast' unless the setting walcast.message_prefix is set
--     (e.g. ALTER DATABASE app SET walcast.message_prefix = 'myprefix'); it must match the
--     daemon's [postgres] message_prefix.
--
-- Privileges: on PostgreSQL 15 pg_logical_emit_message() carries the default function ACL
-- (EXECUTE to PUBLIC) and checks nothing else, so any role that may write a tracked table can
-- fire the trigger. The trigger function therefore runs as the invoker (no SECURITY DEFINER,
-- nothing to escalate); every name in it is schema-qualified so the caller's search_path
-- cannot redirect it. Roles need no rights on schema walcast beyond USAGE (granted to PUBLIC
-- below) to call set_context()/clear_context(). If a DBA has revoked EXECUTE on
-- pg_logical_emit_message from PUBLIC, grant it back to the writing roles, or writes to
-- tracked tables fail with "permission denied for function pg_logical_emit_message".
-- track()/untrack() run as the caller too: CREATE/DROP TRIGGER needs the table's owner.
--
-- Requires wal_level = logical for the daemon to decode the messages. Idempotent: running
-- this file again replaces the functions in place and keeps existing triggers.

CREATE SCHEMA IF NOT EXISTS walcast;
COMMENT ON SCHEMA walcast IS 'walcast emit context: set_context(), clear_context(), track(), untrack()';
GRANT USAGE ON SCHEMA walcast TO PUBLIC;

-- Sets the context in force. Returns the JSON text stored (and later written to the WAL).
CREATE OR REPLACE FUNCTION walcast.set_context(
    actor_user_id text,
    project_id    text    DEFAULT NULL,
    tenant_id     text    DEFAULT NULL,
    skip_emit     boolean DEFAULT false,
    is_local      boolean DEFAULT true)
RETURNS text
LANGUAGE plpgsql
VOLATILE
AS $function$
DECLARE
    context text;
BEGIN
    -- A batch job silencing its writes may have no user to name; anything else needs one.
    IF actor_user_id IS NULL AND NOT COALESCE(skip_emit, false) THEN
        RAISE EXCEPTION 'walcast.set_context: actor_user_id must not be null'
            USING HINT = 'Use walcast.clear_context() to remove the context, or skip_emit => true to silence a transaction.';
    END IF;
    -- Built by hand rather than with json_build_object() so the text is compact and keeps
    -- this key order; to_json() does the string escaping.
    context := pg_catalog.format('{"actorUserId":%s,"projectId":%s,"tenantId":%s,"skipEmit":%s}',
        COALESCE(pg_catalog.to_json(actor_user_id)::text, 'null'),
        COALESCE(pg_catalog.to_json(project_id)::text, 'null'),
        COALESCE(pg_catalog.to_json(tenant_id)::text, 'null'),
        CASE WHEN COALESCE(skip_emit, false) THEN 'true' ELSE 'false' END);
    PERFORM pg_catalog.set_config('walcast.context', context, COALESCE(is_local, true));
    RETURN context;
END;
$function$;

COMMENT ON FUNCTION walcast.set_context(text, text, text, boolean, boolean) IS
    'Sets the emit context for this transaction (is_local => true) or session (false)';

-- Removes the context, both the transaction-local and the session value.
CREATE OR REPLACE FUNCTION walcast.clear_context()
RETURNS void
LANGUAGE sql
VOLATILE
AS $function$
    SELECT pg_catalog.set_config('walcast.context', '', false);
    SELECT NULL::void;
$function$;

COMMENT ON FUNCTION walcast.clear_context() IS 'Removes the emit context (local and session)';

-- The statement trigger. Writes the context in force unless this transaction already
-- wrote that same context as its latest message.
CREATE OR REPLACE FUNCTION walcast.emit_context()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
AS $function$
DECLARE
    context text := pg_catalog.current_setting('walcast.context', true);
BEGIN
    -- Never set: NULL. Cleared, or reverted at transaction end: ''.
    IF context IS NULL OR context = '' THEN
        RETURN NULL;
    END IF;
    IF context IS DISTINCT FROM pg_catalog.current_setting('walcast.emitted', true) THEN
        PERFORM pg_catalog.pg_logical_emit_message(
            true,
            COALESCE(NULLIF(pg_catalog.current_setting('walcast.message_prefix', true), ''), 'walcast'),
            context);
        -- is_local => true: forgotten at commit/abort, reverted by ROLLBACK TO SAVEPOINT.
        PERFORM pg_catalog.set_config('walcast.emitted', context, true);
    END IF;
    RETURN NULL;
END;
$function$;

COMMENT ON FUNCTION walcast.emit_context() IS
    'Statement trigger: writes the walcast context as a transactional logical message';

-- Attaches the trigger (replacing it if present). Idempotent.
CREATE OR REPLACE FUNCTION walcast.track(tbl regclass)
RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $function$
BEGIN
    EXECUTE pg_catalog.format(
        'CREATE OR REPLACE TRIGGER walcast_context BEFORE INSERT OR UPDATE OR DELETE ON %s '
        'FOR EACH STATEMENT EXECUTE FUNCTION walcast.emit_context()', tbl);
END;
$function$;

COMMENT ON FUNCTION walcast.track(regclass) IS
    'Attaches the walcast context trigger to a table (idempotent)';

-- Detaches the trigger if present. Idempotent.
CREATE OR REPLACE FUNCTION walcast.untrack(tbl regclass)
RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $function$
BEGIN
    EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS walcast_context ON %s', tbl);
END;
$function$;

COMMENT ON FUNCTION walcast.untrack(regclass) IS
    'Detaches the walcast context trigger from a table (idempotent)';

-- Tables that currently carry the trigger, e.g. for `walcast check`.
CREATE OR REPLACE VIEW walcast.tracked AS
    SELECT n.nspname AS schema_name, c.relname AS table_name, t.tgrelid::regclass AS tbl
    FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE t.tgname = 'walcast_context'
      AND t.tgfoid = 'walcast.emit_context()'::pg_catalog.regprocedure;

GRANT SELECT ON walcast.tracked TO PUBLIC;

-- A token for the snapshot the calling statement sees: 'v1:<xmin>:<xmax>:<xip,...>:<lsn>',
-- the xids with their epoch (pg_current_snapshot()) and a WAL position no earlier than any
-- commit the snapshot sees (the insert position; on a standby, the replay position).
-- Call it in the same REPEATABLE READ transaction as the page's reads (or in the same
-- statement under READ COMMITTED): joining a room with the token then delivers exactly the
-- transactions that snapshot did not see. STABLE: within one statement it does not change.
CREATE OR REPLACE FUNCTION walcast.snapshot()
RETURNS text
LANGUAGE sql
STABLE
AS $fn$
    SELECT 'v1:' || pg_catalog.pg_current_snapshot()::text || ':' ||
        (CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn()
              ELSE pg_catalog.pg_current_wal_insert_lsn() END)::text
$fn$;
COMMENT ON FUNCTION walcast.snapshot() IS
    'Token for joining a room without a gap: walcast delivers the transactions this snapshot did not see';

-- A refresh token's rotation as one call: on its own it is one round trip, its own transaction; inside one, its
-- locks are held to the caller's COMMIT. Every statement here takes a new snapshot (read committed, a volatile
-- function), so each sees what committed while an earlier one waited for a lock: a single SQL statement could not
-- (its snapshot precedes its locks), and two racing rotations of one token would both find it unused.
--
-- Locks in the one order every session writer uses: the user row (shared), then the session row (its update),
-- whose lock serialises every writer of the session's tokens, so the token needs no lock of its own.
--
-- No row: the token is unknown, revoked or expired, or its session is. Otherwise one row, the user (with its token
-- version), the session, and the presented token's "usedAt" before this call:
--   null: its first use; it is now used and its child (p_child_hash, expiring at p_child_expires_by or with its
--     session, whichever is first) inserted, with that expiry in "childExpiresAt";
--   a time: it was presented before, and nothing is written but the session's last use; "childExpiresAt" is the
--     expiry of the child that first use made, or null when that child is gone (revoked or expired).
CREATE FUNCTION rotate_refresh_token(
  p_token_hash text,
  p_at timestamptz,
  p_child_hash text,
  p_child_expires_by timestamptz
) RETURNS TABLE (
  "id" uuid,
  "email" text,
  "name" text,
  "roles" text[],
  "emailVerifiedAt" timestamptz,
  "mfaEnabled" boolean,
  "createdAt" timestamptz,
  "updatedAt" timestamptz,
  "tokenVersion" integer,
  "sessionId" uuid,
  "amr" text[],
  "usedAt" timestamptz,
  "childExpiresAt" timestamptz
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  v_token_id uuid;
  v_session_expires_at timestamptz;
BEGIN
  SELECT u.id, u.email, u.name, u.roles, u.email_verified_at,
      EXISTS (SELECT 1 FROM totp_factors f WHERE f.user_id = u.id AND f.enabled_at IS NOT NULL),
      u.created_at, u.updated_at, u.token_version, t.session_id
    INTO "id", "email", "name", "roles", "emailVerifiedAt", "mfaEnabled", "createdAt", "updatedAt", "tokenVersion",
      "sessionId"
    FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id
    WHERE t.token_hash = p_token_hash
    FOR SHARE OF u;
  IF NOT FOUND THEN RETURN; END IF;

  -- Writing the last use takes the session's row lock: no separate SELECT ... FOR UPDATE.
  UPDATE sessions s SET last_used_at = p_at
    WHERE s.id = "sessionId" AND s.revoked_at IS NULL AND s.expires_at > p_at
    RETURNING s.expires_at, s.amr INTO v_session_expires_at, "amr";
  IF NOT FOUND THEN RETURN; END IF;

  SELECT t.id, t.used_at INTO v_token_id, "usedAt"
    FROM refresh_tokens t
    WHERE t.token_hash = p_token_hash AND t.revoked_at IS NULL AND t.expires_at > p_at;
  IF NOT FOUND THEN RETURN; END IF;

  IF "usedAt" IS NULL THEN
    "childExpiresAt" := LEAST(p_child_expires_by, v_session_expires_at);
    UPDATE refresh_tokens t SET used_at = p_at WHERE t.id = v_token_id;
    INSERT INTO refresh_tokens (session_id, parent_id, token_hash, issued_at, expires_at)
      VALUES ("sessionId", v_token_id, p_child_hash, p_at, "childExpiresAt");
  ELSE
    SELECT t.expires_at INTO "childExpiresAt"
      FROM refresh_tokens t
      WHERE t.token_hash = p_child_hash AND t.revoked_at IS NULL AND t.expires_at > p_at;
  END IF;
  RETURN NEXT;
END
$$;

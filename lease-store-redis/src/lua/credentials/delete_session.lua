-- Deletes one session (sign-out).
-- KEYS: 1 session hash
-- ARGV: 1 sha, 2 base
-- Reply: 1 if it existed, else 0
return drop_session(ARGV[2], ARGV[1])

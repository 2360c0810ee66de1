-- Mailwright metadata (SQLite, WAL). Version 1.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS domains (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,            -- lowercase A-label
    pop3_expire_days INTEGER,             -- RFC 2449 EXPIRE: days kept after a POP3 download; NULL: never
    created REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY,
    domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    local_part TEXT NOT NULL,             -- as given
    lookup TEXT NOT NULL UNIQUE,          -- lower(local_part) @ domain
    password_hash TEXT NOT NULL,          -- argon2id
    scram_salt BLOB NOT NULL,
    scram_stored_key BLOB NOT NULL,
    scram_server_key BLOB NOT NULL,
    scram_iterations INTEGER NOT NULL,
    quota_bytes INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS aliases (
    id INTEGER PRIMARY KEY,
    domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    local_part TEXT NOT NULL,             -- '' for the catch-all
    lookup TEXT NOT NULL UNIQUE,          -- lower(local_part) @ domain, '@domain' for catch-all
    targets TEXT NOT NULL,                -- JSON list of addresses
    created REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS mailboxes (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    special_use TEXT,                     -- RFC 6154: \Drafts, \Sent, \Trash, \Junk, \Archive
    uidvalidity INTEGER NOT NULL,
    uidnext INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account_id, name)
);

-- IMAP subscriptions (RFC 9051 §6.3.7): names, not mailboxes. A name may be
-- subscribed before its mailbox exists and stays subscribed after it is deleted.
-- (Databases from before this table have a mailboxes.subscribed column; it is
-- copied here once, at start-up, and not used after.)
CREATE TABLE IF NOT EXISTS subscriptions (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    blob TEXT NOT NULL,                   -- sha256 of the stored file
    size INTEGER NOT NULL,
    internaldate REAL NOT NULL,
    flags TEXT NOT NULL DEFAULT '',
    modseq INTEGER NOT NULL,
    message_id TEXT NOT NULL,             -- our id, shared by every copy of one delivery
    pop3_retrieved REAL,                  -- first POP3 download (for EXPIRE)
    meta_id INTEGER,                      -- its message_meta row (IMAP), set at delivery
    UNIQUE (mailbox_id, uid)
);
CREATE INDEX IF NOT EXISTS messages_blob ON messages (blob);

CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    blob TEXT NOT NULL,
    size INTEGER NOT NULL,
    mail_from TEXT NOT NULL,              -- '' for the null reverse-path
    body TEXT,                            -- RFC 6152 BODY=
    smtputf8 INTEGER NOT NULL DEFAULT 0,  -- RFC 6531
    ret TEXT,                             -- RFC 3461 RET=
    envid TEXT,                           -- RFC 3461 ENVID= (decoded)
    sender_account TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_blob ON queue (blob);

CREATE TABLE IF NOT EXISTS queue_recipients (
    id INTEGER PRIMARY KEY,
    queue_id INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    notify TEXT,                          -- RFC 3461 NOTIFY=
    orcpt TEXT,                           -- RFC 3461 ORCPT= (addr-type;decoded)
    state TEXT NOT NULL DEFAULT 'pending',
    next_attempt REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_reply TEXT,
    delay_warned INTEGER NOT NULL DEFAULT 0, -- a "delayed" DSN was sent (RFC 3464)
    lease REAL NOT NULL DEFAULT 0             -- claimed for delivery until (worker lease)
);
CREATE INDEX IF NOT EXISTS queue_recipients_due ON queue_recipients (state, next_attempt);

CREATE TABLE IF NOT EXISTS queue_attempts (
    id INTEGER PRIMARY KEY,
    queue_id INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    ts REAL NOT NULL,
    remote TEXT NOT NULL,                 -- "mx.example.net [192.0.2.1]"
    tls TEXT NOT NULL,                    -- "TLSv1.3 TLS_AES_256_GCM_SHA384", "" for none
    reply TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_attempts_queue ON queue_attempts (queue_id);

-- Messages that left the queue with every recipient final, kept for an admin to read
-- ([events] message_retention_days): their blob stays referenced from here until the
-- pruner removes the row (store/sqlite/queue.py prune_finished).
CREATE TABLE IF NOT EXISTS queue_finished (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    blob TEXT NOT NULL,
    size INTEGER NOT NULL,
    mail_from TEXT NOT NULL,              -- '' for the null reverse-path
    finished REAL NOT NULL                -- when the last recipient became final
);
CREATE INDEX IF NOT EXISTS queue_finished_time ON queue_finished (finished);
CREATE INDEX IF NOT EXISTS queue_finished_blob ON queue_finished (blob);

CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    type TEXT NOT NULL,
    session TEXT,
    message_id TEXT,
    data TEXT NOT NULL                    -- JSON object
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);

-- Small message blobs live here (one row, many references), large ones as files.
CREATE TABLE IF NOT EXISTS blob_inline (
    digest TEXT PRIMARY KEY,
    data BLOB NOT NULL
);

-- DKIM keys (RFC 6376 §3.6): the private key is a file under data_dir/dkim (mode 0600);
-- `name` groups the RSA and Ed25519 selectors made together, signed with together.
CREATE TABLE IF NOT EXISTS dkim_keys (
    id INTEGER PRIMARY KEY,
    domain TEXT NOT NULL,
    name TEXT NOT NULL,                   -- what `dkim generate --selector` named
    selector TEXT NOT NULL,               -- as published: <name>-rsa, <name>-ed25519
    algorithm TEXT NOT NULL,              -- rsa-sha256 | ed25519-sha256
    path TEXT NOT NULL,
    txt TEXT NOT NULL,                    -- the record to publish at selector._domainkey
    active INTEGER NOT NULL DEFAULT 0,    -- signs outbound mail
    created REAL NOT NULL,
    UNIQUE (domain, selector)
);

-- IMAP (RFC 9051): what a message's parse at delivery found, once per blob (every
-- copy shares it), so FETCH of metadata and SEARCH never re-read the message.
CREATE TABLE IF NOT EXISTS message_meta (
    id INTEGER PRIMARY KEY,               -- rowid of its message_text row
    blob TEXT NOT NULL UNIQUE,
    -- small search and sort keys first: SQLite reads a row's columns in order, and
    -- the rendered structures below may spill onto overflow pages
    sent REAL,                            -- Date: as a time (SORT DATE)
    sent_day INTEGER,                     -- Date:'s day as written, YYYYMMDD (SENTON...)
    subject TEXT NOT NULL,                -- decoded (SEARCH SUBJECT)
    base_subject TEXT NOT NULL,           -- RFC 5256 §2.1, collated (SORT SUBJECT, THREAD)
    from_ TEXT NOT NULL, to_ TEXT NOT NULL, cc TEXT NOT NULL, bcc TEXT NOT NULL,
    sort_from TEXT NOT NULL, sort_to TEXT NOT NULL, sort_cc TEXT NOT NULL,
    display_from TEXT NOT NULL DEFAULT '', -- RFC 5957 DISPLAYFROM / DISPLAYTO, collated
    display_to TEXT NOT NULL DEFAULT '',
    msgid TEXT NOT NULL, in_reply_to TEXT NOT NULL, refs TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,   -- of the parse (store/sqlite/meta.py)
    envelope BLOB NOT NULL,               -- rendered ENVELOPE
    body BLOB NOT NULL,                   -- rendered BODY
    bodystructure BLOB NOT NULL,          -- rendered BODYSTRUCTURE
    structure TEXT NOT NULL,              -- MIME part tree with offsets (JSON)
    header BLOB NOT NULL                  -- the top-level header block
);

-- The text SEARCH TEXT/BODY look in (store/sqlite/textindex.py): each message's decoded
-- header fields and decoded body text, case and diacritics folded; written with its
-- message, in the delivery's transaction.
CREATE TABLE IF NOT EXISTS message_texts (
    meta_id INTEGER PRIMARY KEY,          -- its message_meta row
    hdr TEXT NOT NULL,
    body TEXT NOT NULL
);

-- Texts not yet in the full-text index: the primary's writer indexes them when
-- deliveries pause, or once too many wait (textindex.py); SEARCH scans them meanwhile.
CREATE TABLE IF NOT EXISTS message_text_pending (
    meta_id INTEGER PRIMARY KEY,          -- its message_texts row
    queued REAL NOT NULL,                 -- when it was stored
    chars INTEGER NOT NULL DEFAULT 0      -- its length (0: stored before this column)
);

-- Full-text index over message_texts (its content: the text is stored once).
-- Trigrams, because SEARCH matches substrings, not words (RFC 9051 §6.4.4); no
-- positions or column sizes: a trigram lookup only narrows the rows down, instr() on
-- the text decides (store/sqlite/search.py).
CREATE VIRTUAL TABLE IF NOT EXISTS message_text USING fts5(
    hdr, body, tokenize = 'trigram', detail = none, columnsize = 0,
    content = 'message_texts', content_rowid = 'meta_id'
);

-- Expunged UIDs with the MODSEQ of their removal: other sessions learn of them
-- (RFC 9051 §7.5.1) and QRESYNC clients get VANISHED (RFC 7162 §3.2.10).
CREATE TABLE IF NOT EXISTS expunged (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS expunged_modseq ON expunged (mailbox_id, modseq);
CREATE INDEX IF NOT EXISTS messages_modseq ON messages (mailbox_id, modseq);

-- HTTP API keys (admin/apikeys.py): the token's secret part only as its SHA-256.
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL UNIQUE,          -- the token's public part, shown in lists
    digest TEXT NOT NULL,                 -- hex SHA-256 of the whole token
    scope TEXT NOT NULL,                  -- admin | domain-admin | send
    domains TEXT NOT NULL DEFAULT '[]',   -- JSON list of canonical domains
    created REAL NOT NULL,
    last_used REAL,
    revoked REAL
);

-- Web admin accounts (admin/admins.py) and their browser sessions: an argon2 hash per
-- admin; per session the SHA-256 of its cookie token, never the token.
CREATE TABLE IF NOT EXISTS admin_users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created REAL NOT NULL,
    last_login REAL
);
CREATE TABLE IF NOT EXISTS admin_sessions (
    digest TEXT PRIMARY KEY,
    admin_id INTEGER NOT NULL REFERENCES admin_users(id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created REAL NOT NULL,
    last_seen REAL NOT NULL
);

-- Webhooks (webhooks/, admin/webhooks.py): endpoints, and the durable outbox of their
-- deliveries. AUTOINCREMENT: ids are never reused, since receivers deduplicate on the
-- delivery id and admins name endpoints by theirs.
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL,                    -- http(s)
    domain TEXT,                          -- canonical; NULL: the events of every domain
    events TEXT NOT NULL,                 -- JSON list of event types; ["*"]: all
    secret TEXT NOT NULL,                 -- HMAC-SHA256 key of the signatures
    created REAL NOT NULL,
    disabled REAL,                        -- when it was disabled; NULL: enabled
    failures INTEGER NOT NULL DEFAULT 0,  -- consecutive failed attempts
    retry_at REAL NOT NULL DEFAULT 0      -- paused until (the backoff after a failure)
);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id INTEGER NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    -- an event removed by the [events] retention takes its deliveries (the log) along
    event_id INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    state TEXT NOT NULL DEFAULT 'pending', -- pending | delivered | failed (given up)
    queued REAL NOT NULL,                 -- made, or redelivered: max_age counts from here
    attempts INTEGER NOT NULL DEFAULT 0,
    last_attempt REAL,
    last_status INTEGER,                  -- the HTTP status of the last answer
    last_error TEXT,                      -- why the last attempt failed
    done REAL                             -- delivered or given up at
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_log ON webhook_deliveries (endpoint_id, id);
CREATE INDEX IF NOT EXISTS webhook_deliveries_pending ON webhook_deliveries (endpoint_id, id)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_event ON webhook_deliveries (event_id);

-- Fan-out: every event row, whichever process writes it, puts a delivery into the outbox
-- of each enabled endpoint it matches (its type in the endpoint's list or "*"; for a
-- per-domain endpoint, the event's domain), in the transaction that stores the event.
-- So a committed event is never missed, and a crash loses none. (Older databases get
-- events.domain from ADDED_COLUMNS when opened, before any row is written.)
CREATE TRIGGER IF NOT EXISTS webhook_fanout AFTER INSERT ON events
WHEN EXISTS (SELECT 1 FROM webhook_endpoints WHERE disabled IS NULL)
BEGIN
    INSERT INTO webhook_deliveries (endpoint_id, event_id, queued)
    SELECT e.id, NEW.id, NEW.ts FROM webhook_endpoints e
    WHERE e.disabled IS NULL AND (e.domain IS NULL OR e.domain = NEW.domain)
      AND EXISTS (SELECT 1 FROM json_each(e.events) WHERE value IN (NEW.type, '*'));
END;

-- The suppression list (delivery/suppression.py, admin/suppressions.py): addresses a
-- sending domain no longer sends to, for all its mail (campaign NULL) or one campaign's.
CREATE TABLE IF NOT EXISTS suppressions (
    id INTEGER PRIMARY KEY,
    domain TEXT NOT NULL,                 -- the sending domain, canonical
    address TEXT NOT NULL,                -- as given
    lookup TEXT NOT NULL,                 -- lower(local part) @ canonical domain
    campaign TEXT,                        -- NULL: every message of the domain
    reason TEXT NOT NULL,                 -- unsubscribe | bounce | complaint | manual
    source TEXT NOT NULL DEFAULT '',      -- what added it (a bounce's reply, ...)
    created REAL NOT NULL
);
-- One entry per address, domain and campaign (NULLs would be distinct in a plain key);
-- also the index of the check at each send (domain, lookup).
CREATE UNIQUE INDEX IF NOT EXISTS suppressions_entry
    ON suppressions (domain, lookup, ifnull(campaign, ''));

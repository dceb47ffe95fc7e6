-- A history file written by ccm-tui's schema-1 writer (ccm_tui/telemetry/history.py at 62499d3, the
-- schema of a99f98b), dumped with sqlite3's iterdump. tests/test_history_migrations.py loads it.
BEGIN TRANSACTION;
CREATE TABLE attempts (
    request_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    variant TEXT NOT NULL,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL,
    started_at REAL NOT NULL,
    duration_ms REAL NOT NULL,
    retry_after REAL,
    PRIMARY KEY (request_id, n)
);
INSERT INTO "attempts" VALUES('req-v1-1',0,'anthropic','claude-sonnet-4-5-20250929','claude-sonnet-4-5-20250929',200,'ok','',1764000000.0,1500.0,NULL);
INSERT INTO "attempts" VALUES('req-v1-2',0,'anthropic','claude-haiku-4-5','claude-haiku-4-5',529,'cooldown','overloaded',1764000060.0,250.0,2.0);
INSERT INTO "attempts" VALUES('req-v1-2',1,'openrouter','anthropic/claude-haiku-4.5','anthropic/claude-haiku-4.5',200,'ok','',1764000060.25,750.0,NULL);
INSERT INTO "attempts" VALUES('req-v1-3',0,'anthropic','claude-opus-4-1','claude-opus-4-1',429,'cooldown','rate limited',1764000120.0,125.0,30.0);
CREATE TABLE requests (
    request_id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    requested_model TEXT NOT NULL,
    provider TEXT,
    model TEXT,
    stream INTEGER NOT NULL,
    status INTEGER NOT NULL,
    error_type TEXT,
    error_message TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_creation_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cost_usd REAL,
    ttfb_ms REAL,
    duration_ms REAL NOT NULL,
    failovers INTEGER NOT NULL
);
INSERT INTO "requests" VALUES('req-v1-1',1764000000.0,'claude-sonnet-4-5','anthropic','claude-sonnet-4-5-20250929',1,200,NULL,NULL,1200,340,100,5000,0.0125,500.0,1500.0,0);
INSERT INTO "requests" VALUES('req-v1-2',1764000060.0,'claude-haiku-4-5','openrouter','anthropic/claude-haiku-4.5',0,200,NULL,NULL,800,120,0,0,0.0014,1000.0,1000.0,1);
INSERT INTO "requests" VALUES('req-v1-3',1764000120.0,'claude-opus-4-1',NULL,NULL,1,429,'rate_limit_error','every provider is cooling',0,0,0,0,NULL,NULL,125.0,1);
CREATE TABLE spend_alerts (
    at REAL NOT NULL,
    window TEXT NOT NULL,
    spent_usd REAL NOT NULL,
    threshold_usd REAL NOT NULL
);
INSERT INTO "spend_alerts" VALUES(1764000180.0,'hour',5.5,5.0);
CREATE INDEX requests_started_at ON requests (started_at);
CREATE INDEX attempts_started_at ON attempts (started_at);
CREATE INDEX spend_alerts_at ON spend_alerts (at);
COMMIT;
PRAGMA user_version = 1;

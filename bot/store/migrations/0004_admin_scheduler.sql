-- Admin and scheduler: the audit log, broadcast opt-ins, rate-limit counters and scheduled jobs.

-- Every admin action and every refused attempt: who, what, when, from which channel, with what outcome.
CREATE TABLE audit_log (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    person_id     bigint REFERENCES people (id) ON DELETE SET NULL,
    actor         text NOT NULL,          -- channel:user id of the sender
    actor_name    text NOT NULL DEFAULT '',
    role          text NOT NULL,
    channel       text NOT NULL,
    conversation  text NOT NULL,
    command       text NOT NULL,
    args          text NOT NULL DEFAULT '',
    outcome       text NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
CREATE INDEX audit_log_person ON audit_log (person_id, at DESC);

-- People who asked to receive broadcasts, and the conversation to send them to.
CREATE TABLE broadcast_optins (
    person_id     bigint PRIMARY KEY REFERENCES people (id) ON DELETE CASCADE,
    conversation  jsonb NOT NULL,
    opted_in_at   timestamptz NOT NULL DEFAULT now()
);

-- Fixed one-minute windows of message counts per person and per channel (rows older than an hour are pruned).
CREATE TABLE rate_counters (
    key           text NOT NULL,
    window_start  timestamptz NOT NULL,
    count         integer NOT NULL DEFAULT 0,
    PRIMARY KEY (key, window_start)
);

-- Model spend per person per day is summed from runs.
CREATE INDEX runs_person_started ON runs (person_id, started_at);

-- Jobs: a reminder (text sent into a conversation) or a flow run (a schedule event published into it).
-- The scheduler process holding the advisory lock fires them; `next_run_at` is claimed by compare-and-set.
CREATE TABLE scheduled_jobs (
    id            text PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('reminder', 'flow')),
    source        text NOT NULL CHECK (source IN ('person', 'flow')),
    flow          text,
    text          text NOT NULL DEFAULT '',
    trigger_kind  text NOT NULL CHECK (trigger_kind IN ('cron', 'interval', 'date')),
    trigger_expr  text NOT NULL,
    timezone      text NOT NULL DEFAULT 'UTC',
    anchor        timestamptz,
    conversation  jsonb NOT NULL,
    sender        jsonb,
    person_id     bigint REFERENCES people (id) ON DELETE CASCADE,
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'done', 'missed')),
    next_run_at   timestamptz,
    last_run_at   timestamptz,
    run_count     integer NOT NULL DEFAULT 0,
    revision      integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scheduled_jobs_active ON scheduled_jobs (next_run_at) WHERE status = 'active';
CREATE INDEX scheduled_jobs_person ON scheduled_jobs (person_id);

-- The spine: accepted events, people and identities, conversation history, flow runs and steps.

CREATE EXTENSION IF NOT EXISTS vector;

-- Every accepted event, recorded before it is queued: the durable dedupe key and the list of
-- work to hand out again after a crash (status 'pending').
CREATE TABLE events (
    id            text PRIMARY KEY,
    conversation  text NOT NULL,
    payload       jsonb NOT NULL,
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'dead')),
    error         text,
    received_at   timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz
);
CREATE INDEX events_pending ON events (received_at) WHERE status = 'pending';

-- A person may have identities on several channels.
CREATE TABLE people (
    id            bigserial PRIMARY KEY,
    display_name  text NOT NULL DEFAULT '',
    role          text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member', 'blocked')),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE identities (
    channel       text NOT NULL,
    user_id       text NOT NULL,
    person_id     bigint NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    display_name  text NOT NULL DEFAULT '',
    first_seen    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, user_id)
);
CREATE INDEX identities_person ON identities (person_id);

-- What was said in each conversation, fed back to llm nodes as history.
CREATE TABLE messages (
    id            bigserial PRIMARY KEY,
    conversation  text NOT NULL,
    person_id     bigint REFERENCES people (id) ON DELETE SET NULL,
    role          text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content       text NOT NULL,
    event_id      text,
    run_id        uuid,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_conversation ON messages (conversation, id DESC);

-- One row per flow run; `state` holds everything needed to resume at `next_node`.
CREATE TABLE runs (
    id            uuid PRIMARY KEY,
    flow          text NOT NULL,
    event_id      text,
    conversation  text NOT NULL,
    person_id     bigint REFERENCES people (id) ON DELETE SET NULL,
    status        text NOT NULL CHECK (status IN ('running', 'waiting', 'succeeded', 'failed', 'interrupted', 'cancelled')),
    next_node     text,
    state         jsonb NOT NULL DEFAULT '{}'::jsonb,
    steps         integer NOT NULL DEFAULT 0,
    tokens_in     integer NOT NULL DEFAULT 0,
    tokens_out    integer NOT NULL DEFAULT 0,
    cost          double precision NOT NULL DEFAULT 0,
    error         text,
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
CREATE INDEX runs_event ON runs (event_id);
CREATE INDEX runs_unfinished ON runs (updated_at) WHERE status IN ('running', 'interrupted');
CREATE INDEX runs_conversation ON runs (conversation, started_at DESC);
CREATE INDEX runs_waiting ON runs (conversation, updated_at DESC) WHERE status = 'waiting';

-- One row per node execution, written as the run goes.
CREATE TABLE run_steps (
    run_id        uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq           integer NOT NULL,
    node_id       text NOT NULL,
    kind          text NOT NULL,
    status        text NOT NULL CHECK (status IN ('succeeded', 'failed', 'defaulted', 'skipped')),
    attempts      integer NOT NULL DEFAULT 1,
    inputs        jsonb,
    outputs       jsonb,
    error         text,
    started_at    timestamptz NOT NULL,
    duration_ms   double precision NOT NULL,
    tokens_in     integer NOT NULL DEFAULT 0,
    tokens_out    integer NOT NULL DEFAULT 0,
    cost          double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, seq)
);

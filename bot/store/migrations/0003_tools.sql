-- Tools: every call an agent or tool node made, and the human waits (approvals, `ask`) that park runs.
-- run_id has no foreign key: a run's row is written together with its first step, after the
-- node (and so its tool calls or its question) has already run.

CREATE TABLE tool_calls (
    id           bigserial PRIMARY KEY,
    run_id       uuid,
    node_id      text NOT NULL DEFAULT '',
    call_id      text NOT NULL DEFAULT '',
    tool         text NOT NULL,
    arguments    jsonb NOT NULL DEFAULT '{}'::jsonb,
    result       text NOT NULL DEFAULT '',
    error        text,
    status       text NOT NULL,
    duration_ms  double precision NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tool_calls_run ON tool_calls (run_id, id);
CREATE INDEX tool_calls_tool ON tool_calls (tool, created_at);

-- A question put to a person (an `ask` node) or an approval a tool needs. The run is WAITING
-- meanwhile; the row says who may answer, until when, and how it ended.
CREATE TABLE human_waits (
    id            uuid PRIMARY KEY,
    run_id        uuid,
    node_id       text NOT NULL,
    kind          text NOT NULL,                 -- ask | approval
    tool          text NOT NULL DEFAULT '',
    arguments     jsonb NOT NULL DEFAULT '{}'::jsonb,
    conversation  jsonb NOT NULL,                -- the run's ConversationRef (where the answer resumes it)
    requester     jsonb NOT NULL,                -- the Sender who started the run
    approvers     text NOT NULL DEFAULT 'requester',
    status        text NOT NULL DEFAULT 'pending',  -- pending | approved | denied | answered | timed_out
    answer        text,
    decided_by    text,
    deadline      timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    decided_at    timestamptz
);
CREATE INDEX human_waits_due ON human_waits (deadline) WHERE status = 'pending';
CREATE INDEX human_waits_run ON human_waits (run_id);

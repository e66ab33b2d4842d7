-- Per-person long-term memory, identity link codes, conversation summaries, and knowledge collections.
--
-- Vectors are stored untyped (`vector`, full precision) with their dimension beside them, so one
-- schema serves every embedder (offline 256-d, OpenAI 1536-d, ...). HNSW needs a fixed dimension:
-- the index is an expression index per dimension over half precision (`embedding::halfvec(N)`,
-- partial on `dim = N`): ~1.4x faster inserts, half the size, up to 4,000 dimensions. This file
-- creates the one for the offline default; the knowledge code creates others on first use.

-- Facts and preferences a person asked us to keep (or a flow extracted). Recall is an exact cosine
-- scan over one person's rows (a few hundred at most): exact beats an HNSW post-filter here.
CREATE TABLE memories (
    id            bigserial PRIMARY KEY,
    person_id     bigint NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    kind          text NOT NULL DEFAULT 'fact' CHECK (kind IN ('fact', 'preference', 'note')),
    content       text NOT NULL CHECK (length(content) > 0),
    embedding     vector NOT NULL,
    dim           integer NOT NULL,
    embedder      text NOT NULL,
    source        text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX memories_person ON memories (person_id, id);
-- Saying the same thing twice keeps one memory.
CREATE UNIQUE INDEX memories_person_content ON memories (person_id, lower(content));

-- One-time codes: `/sb link` on one channel, the code sent from another joins the two people.
CREATE TABLE link_codes (
    code          text PRIMARY KEY,
    person_id     bigint NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    channel       text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX link_codes_person ON link_codes (person_id);

-- The running summary of a conversation's older turns (those before `through_id`).
CREATE TABLE conversation_summaries (
    conversation  text PRIMARY KEY,
    summary       text NOT NULL,
    through_id    bigint NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE kb_collections (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    embedder      text NOT NULL,
    dim           integer NOT NULL CHECK (dim BETWEEN 1 AND 4000),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per ingested file; `content_hash` makes re-ingesting an unchanged file a no-op.
CREATE TABLE kb_documents (
    id            bigserial PRIMARY KEY,
    collection_id bigint NOT NULL REFERENCES kb_collections (id) ON DELETE CASCADE,
    source        text NOT NULL,
    content_hash  text NOT NULL,
    format        text NOT NULL,
    title         text NOT NULL DEFAULT '',
    bytes         bigint NOT NULL,
    chunks        integer NOT NULL DEFAULT 0,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    ingested_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (collection_id, source)
);

CREATE TABLE kb_chunks (
    id            bigserial PRIMARY KEY,
    document_id   bigint NOT NULL REFERENCES kb_documents (id) ON DELETE CASCADE,
    collection_id bigint NOT NULL,
    chunk_index   integer NOT NULL,
    heading       text NOT NULL DEFAULT '',
    content       text NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    dim           integer NOT NULL,
    embedding     vector NOT NULL,
    tsv           tsvector GENERATED ALWAYS AS (
                      setweight(to_tsvector('english', heading), 'A') || to_tsvector('english', content)
                  ) STORED
);
CREATE INDEX kb_chunks_document ON kb_chunks (document_id, chunk_index);
CREATE INDEX kb_chunks_collection ON kb_chunks (collection_id);
CREATE INDEX kb_chunks_tsv ON kb_chunks USING gin (tsv);
CREATE INDEX kb_chunks_metadata ON kb_chunks USING gin (metadata jsonb_path_ops);
CREATE INDEX kb_chunks_hnsw_256 ON kb_chunks USING hnsw ((embedding::halfvec(256)) halfvec_cosine_ops)
    WITH (m = 16, ef_construction = 64) WHERE dim = 256;

-- Embedding tables. Their dimension N is EMBEDDINGS_DIM (default 1024): `etl migrate` passes it
-- as the session setting `etl.embeddings_dim`, so this file stays the same whatever N is.
-- Changing N later needs a new migration (or a fresh database): `etl run` refuses a model whose
-- dimension differs from the column's before calling it.

CREATE EXTENSION IF NOT EXISTS vector;

DO $migration$
DECLARE
    dim integer := coalesce(nullif(current_setting('etl.embeddings_dim', true), ''), '1024')::integer;
BEGIN
    IF dim < 1 OR dim > 2000 THEN
        RAISE EXCEPTION 'EMBEDDINGS_DIM must be between 1 and 2000 (pgvector HNSW indexes stop at 2000), got %', dim;
    END IF;

    EXECUTE format($sql$
        CREATE TABLE IF NOT EXISTS rag_anchor_embeddings (
            node_id         text NOT NULL,
            node_type       text NOT NULL,
            attribute_name  text NOT NULL,
            attribute_value text,
            embedding       vector(%s) NOT NULL,
            PRIMARY KEY (node_id, node_type, attribute_name)
        )$sql$, dim);

    EXECUTE format($sql$
        CREATE TABLE IF NOT EXISTS rag_edge_embeddings (
            from_node_id    text NOT NULL,
            to_node_id      text NOT NULL,
            edge_label      text NOT NULL,
            attribute_name  text NOT NULL,
            attribute_value text,
            embedding       vector(%s) NOT NULL,
            PRIMARY KEY (from_node_id, to_node_id, edge_label, attribute_name)
        )$sql$, dim);
END
$migration$;

CREATE INDEX IF NOT EXISTS rag_anchor_embeddings_hnsw
    ON rag_anchor_embeddings USING hnsw (embedding vector_cosine_ops);
CREATE INDEX IF NOT EXISTS rag_edge_embeddings_hnsw
    ON rag_edge_embeddings USING hnsw (embedding vector_cosine_ops);

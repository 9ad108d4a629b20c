-- The knowledge-graph pipeline's tables, with Vedana's schemas, so that the systems reading them
-- keep working.

CREATE TABLE IF NOT EXISTS dm_anchors (
    noun        text PRIMARY KEY,
    description text,
    id_example  text,
    query       text
);

CREATE TABLE IF NOT EXISTS dm_anchor_attributes (
    anchor          text NOT NULL,
    attribute_name  text NOT NULL,
    description     text,
    data_example    text,
    embeddable      boolean,
    query           text,
    dtype           text,
    embed_threshold double precision,
    embed_top_n     integer,
    PRIMARY KEY (anchor, attribute_name)
);

CREATE TABLE IF NOT EXISTS dm_link_attributes (
    link            text NOT NULL,
    attribute_name  text NOT NULL,
    description     text,
    data_example    text,
    embeddable      boolean,
    query           text,
    dtype           text,
    embed_threshold double precision,
    embed_top_n     integer,
    PRIMARY KEY (link, attribute_name)
);

CREATE TABLE IF NOT EXISTS dm_links (
    anchor1                  text NOT NULL,
    anchor2                  text NOT NULL,
    sentence                 text NOT NULL,
    description              text,
    query                    text,
    anchor1_link_column_name text,
    anchor2_link_column_name text,
    has_direction            boolean,
    PRIMARY KEY (anchor1, anchor2, sentence)
);

CREATE TABLE IF NOT EXISTS dm_queries (
    query_name    text PRIMARY KEY,
    query_example text
);

CREATE TABLE IF NOT EXISTS dm_prompts (
    name text PRIMARY KEY,
    text text
);

CREATE TABLE IF NOT EXISTS dm_conversation_lifecycle (
    event text PRIMARY KEY,
    text  text
);

CREATE TABLE IF NOT EXISTS grist_nodes (
    node_id    text NOT NULL,
    node_type  text NOT NULL,
    attributes jsonb,
    PRIMARY KEY (node_id, node_type)
);

CREATE TABLE IF NOT EXISTS nodes (
    node_id    text NOT NULL,
    node_type  text NOT NULL,
    attributes jsonb,
    PRIMARY KEY (node_id, node_type)
);

CREATE TABLE IF NOT EXISTS grist_edges (
    from_node_id   text NOT NULL,
    to_node_id     text NOT NULL,
    from_node_type text NOT NULL,
    to_node_type   text NOT NULL,
    edge_label     text NOT NULL,
    attributes     jsonb,
    PRIMARY KEY (from_node_id, to_node_id, from_node_type, to_node_type, edge_label)
);

CREATE TABLE IF NOT EXISTS edges (
    from_node_id   text NOT NULL,
    to_node_id     text NOT NULL,
    from_node_type text NOT NULL,
    to_node_type   text NOT NULL,
    edge_label     text NOT NULL,
    attributes     jsonb,
    PRIMARY KEY (from_node_id, to_node_id, from_node_type, to_node_type, edge_label)
);

CREATE TABLE IF NOT EXISTS memgraph_anchor_indexes (
    anchor text PRIMARY KEY
);

CREATE TABLE IF NOT EXISTS memgraph_link_indexes (
    link text PRIMARY KEY
);

CREATE TABLE IF NOT EXISTS eval_gds (
    gds_question      text PRIMARY KEY,
    gds_answer        text,
    question_scenario text,
    question_comment  text,
    question_context  text
);

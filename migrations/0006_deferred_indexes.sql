-- Vector indexes dropped for a bulk load, to be made again when it ends: inserting into an
-- HNSW index row by row costs about ten times building it over the loaded table. A run that
-- dies in between leaves its rows here, and the step's next run makes the indexes again.
CREATE TABLE IF NOT EXISTS etl.deferred_indexes (
    table_name text NOT NULL,
    index_name text NOT NULL,
    definition text NOT NULL,
    PRIMARY KEY (table_name, index_name)
);

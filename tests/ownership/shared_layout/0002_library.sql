-- Face libraries, persons and reference faces (metadata; the vectors live in the library's vector store).
--
-- ``library_id`` is chosen by the client and is unique across accounts: a library belongs to the account whose
-- key created it and every other account gets 403 on it. ``library_uid`` is an internal id that changes when a
-- library is deleted and created again, so that vectors of an earlier library with the same id never match.
-- A library is bound to the embedding model (id + version) of its first reference face.

CREATE TABLE libraries (
    library_id              text PRIMARY KEY,
    library_uid             uuid NOT NULL UNIQUE,
    account_id              text NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
    name                    text NOT NULL DEFAULT '',
    description             text NOT NULL DEFAULT '',
    embedding_model_id      text NOT NULL DEFAULT '',
    embedding_model_version text NOT NULL DEFAULT '',
    embedding_dim           integer NOT NULL DEFAULT 0,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX libraries_account ON libraries (account_id, library_id);

CREATE TABLE library_persons (
    library_id         text NOT NULL REFERENCES libraries (library_id) ON DELETE CASCADE,
    person_id          text NOT NULL,
    name               text NOT NULL DEFAULT '',
    metadata           jsonb,
    -- Vector-store point holding the normalised centroid of the person's reference embeddings.
    centroid_point_id  uuid NOT NULL UNIQUE,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (library_id, person_id)
);

CREATE TABLE library_faces (
    face_id     text PRIMARY KEY,
    library_id  text NOT NULL,
    person_id   text NOT NULL,
    -- Vector-store point holding this reference template.
    point_id    uuid NOT NULL UNIQUE,
    -- The L2-normalised embedding, kept so that centroids can be recomputed and the vector store rebuilt.
    embedding   real[] NOT NULL,
    bbox        real[] NOT NULL,
    quality     real NOT NULL DEFAULT 0,
    raw_norm    real NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (library_id, person_id) REFERENCES library_persons (library_id, person_id) ON DELETE CASCADE
);
CREATE INDEX library_faces_person ON library_faces (library_id, person_id, created_at, face_id);

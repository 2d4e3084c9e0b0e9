-- Library ids are per account (issue 15): two accounts may each have a library 'my-people-lib', and nobody learns
-- that another account uses an id. ``libraries`` is keyed by (account_id, library_id); persons and faces belong to
-- a library through its internal ``library_uid`` (unique across accounts, already the vector store's scope).

ALTER TABLE library_faces DROP CONSTRAINT library_faces_library_id_person_id_fkey;
ALTER TABLE library_persons DROP CONSTRAINT library_persons_library_id_fkey;

ALTER TABLE library_persons ADD COLUMN library_uid uuid;
UPDATE library_persons p SET library_uid = l.library_uid FROM libraries l WHERE l.library_id = p.library_id;
ALTER TABLE library_faces ADD COLUMN library_uid uuid;
UPDATE library_faces f SET library_uid = l.library_uid FROM libraries l WHERE l.library_id = f.library_id;

ALTER TABLE library_persons DROP CONSTRAINT library_persons_pkey;
ALTER TABLE library_persons DROP COLUMN library_id;
ALTER TABLE library_persons
    ALTER COLUMN library_uid SET NOT NULL,
    ADD PRIMARY KEY (library_uid, person_id),
    ADD FOREIGN KEY (library_uid) REFERENCES libraries (library_uid) ON DELETE CASCADE;

DROP INDEX library_faces_person;
ALTER TABLE library_faces DROP COLUMN library_id;
ALTER TABLE library_faces
    ALTER COLUMN library_uid SET NOT NULL,
    ADD FOREIGN KEY (library_uid, person_id) REFERENCES library_persons (library_uid, person_id) ON DELETE CASCADE;
CREATE INDEX library_faces_person ON library_faces (library_uid, person_id, created_at, face_id);

ALTER TABLE libraries DROP CONSTRAINT libraries_pkey;
ALTER TABLE libraries ADD PRIMARY KEY (account_id, library_id);
DROP INDEX libraries_account;

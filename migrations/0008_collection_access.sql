-- 0008_collection_access: who may see a collection (src/platform/auth/collection-access.ts holds the
-- rule; every service that reaches a collection or its contents applies it).
--
-- collections.min_role: the lowest membership role that sees the collection at all. 'viewer' (every
-- member) is the default, so existing collections keep the visibility they had. A member whose role is
-- below it gets 404 for the collection and everything in it, exactly as for a missing one.
alter table collections add column min_role text not null default 'viewer';
alter table collections add constraint collections_min_role_check
  check (min_role in ('owner', 'admin', 'editor', 'viewer'));

-- api_keys.collections: optional allowlist of collection ids (null = no allowlist). A key with an
-- allowlist sees exactly those collections, whatever their min_role; a key without one sees the
-- collections whose min_role is 'viewer' or 'editor' (admin- and owner-only collections need an
-- explicit entry, so a broadly scoped integration key never reads them by default). An empty array is
-- a key that sees no collection (e.g. one that only manages members).
-- An array cannot carry a foreign key: the application checks the ids at creation (live collections of
-- the key's workspace that its creator can see), and an id whose collection is deleted later simply
-- matches nothing.
alter table api_keys add column collections uuid[];
alter table api_keys add constraint api_keys_collections_check
  check (collections is null or (cardinality(collections) <= 100 and array_position(collections, null) is null));

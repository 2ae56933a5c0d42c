-- Room on each page of `deliveries` for the claim's new row version (src/store/deliveries.rs
-- `claim_due` sets `claimed_by` and `claimed_until`, which no index holds): PostgreSQL then
-- makes it a heap-only update, with no new entry in any of the table's five indexes. Rows were
-- packed full, so every claim wrote five index entries, and every later claim's index scan
-- stepped over the dead ones. (Recording the attempt changes `status`, indexed: that update
-- stays a full one.)
ALTER TABLE deliveries SET (fillfactor = 70);

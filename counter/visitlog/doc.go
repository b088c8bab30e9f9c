// Package visitlog is the visit log of the log-structured counting core
// (DESIGN.md, "One click, end to end" steps 4-5): the binary format of a
// batch of visits, which both stores carry (batch.go), and the embedded
// store's log of fsynced segment files (log.go, segment.go).
//
// The hot path encodes the visits of one group commit with AppendBatch and
// appends the bytes: on Redis as one XADD field per partition, on the
// embedded store with Log.Append, one fsync per group commit. The judges
// read the log in order behind it and decode each batch with DecodeBatch.
//
// # For the judge
//
// The log does not dedupe. A batch that is appended again (a retry after a
// timeout whose first attempt did land, a spooled batch shipped twice, the
// records of an Append that reported an fsync failure and were on disk
// after all) is in the log twice with the same Batch.ID: the judge must
// skip a batch id it has applied, and its checkpoint must carry what it
// needs to do so after a restart. Ids of one writer increase (see
// BatchIDs), but the log's order is the order of appends, not of ids: a
// retried batch can land after a younger one, so "skip ids at or below the
// writer's highest" is only right if the writer never retries out of
// order.
//
// The embedded store has one log for every partition: a judge reads every
// record and keeps the visits of its partition. Its checkpoint should be
// the next offset of the last record it read, whoever's visits it held, so
// that Trim is not held back by a partition with no traffic. Trim takes the
// lowest checkpoint of all judges. With many partitions, one reader that
// decodes each batch once (a Decoder: about 50 ns a visit, no allocation)
// and hands each judge its visits costs less than every judge decoding
// every batch.
//
// Log.Notify lets a judge that has read to the end wait for the next
// Append without polling.
package visitlog

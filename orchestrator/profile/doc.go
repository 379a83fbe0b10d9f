// Package profile describes what a synced table holds: row count, and per
// column its type, share of NULLs, distinct count, min/max, mean/stddev,
// most frequent values, a histogram and a few example values. The catalog
// shows it to analysts; the orchestrator profiles each table after a sync.
//
// A table's data is one Parquet file or a folder of them. The Profiler reads
// it with a private in-memory DuckDB, so all the aggregation happens inside
// DuckDB and Go only ever sees a few rows of results, however big the table.
//
// Why it is built this way:
//
//   - Exact stats in one scan. Row count, NULLs, distinct count
//     (approx_count_distinct, a HyperLogLog sketch of fixed size), min/max,
//     mean and stddev of every column come from a single SELECT over all
//     rows. One query per column would read the files once per column.
//
//   - Sampling for distributions. Top values, histograms and example values
//     need a GROUP BY per column, whose memory grows with the number of
//     distinct values. On tables larger than Options.SampleRows they are
//     computed from a random sample of about that many rows, which costs one
//     more scan but bounds the work by the sample size, not the table size.
//     The sample is Bernoulli (each row kept with probability
//     SampleRows/RowCount, known from the first scan): as uniform as a
//     reservoir sample of n rows, and about five times cheaper in DuckDB,
//     whose reservoir copies rows as it goes. Counts are then counts within
//     the sample, not scaled to the table: Profile.SampledRows says how many
//     rows they were counted over, and a caller that wants an estimate for
//     the table multiplies by RowCount/SampledRows. Histogram bounds are the
//     exact min and max from the first scan.
//
//   - Bounded memory. The DuckDB has its own memory_limit (default 512MB),
//     thread count and preserve_insertion_order=false, and spills to a
//     private temporary folder removed by Close, never to the working
//     directory. Concurrent calls share that one limit.
//
// What is profiled depends on the type: numbers (integers, floats,
// decimals) get everything; text, booleans, dates, times, timestamps,
// intervals and UUIDs get everything but mean, stddev and histogram; nested
// types (LIST, STRUCT, MAP, ARRAY, UNION), BLOB and the rest get only NULLs
// and distinct count, as their text form is neither ordered meaningfully
// nor short.
package profile

package querysvc

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"testing"
	"weak"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
)

func batchMessage(data []byte, rows int64) *agnesv1.QueryStreamResponse {
	return &agnesv1.QueryStreamResponse{Event: &agnesv1.QueryStreamResponse_Batch{Batch: &agnesv1.QueryBatch{ArrowBatch: data, RowCount: rows}}}
}

// The wire form an encoder writes is exactly proto.Marshal's encoding of the
// same message, for lengths whose varints take one to four bytes, for a
// group that outgrew its region, and for zero rows (field left out).
func TestWireFormIsProtoEncoding(t *testing.T) {
	for _, tc := range []struct {
		size int
		rows int64
	}{{0, 0}, {1, 1}, {100, 0}, {200, 7}, {70_000, 2048}, {1 << 20, 123_456}, {regionSize + 5, 1 << 40}} {
		data := bytes.Repeat([]byte{0xA5, 0x5A, 0x01}, tc.size/3+1)[:tc.size]
		w := newWireBuffer()
		w.buf.Write(data)
		wire, ipc := w.message(tc.rows)
		require.Equal(t, data, ipc, "size %d", tc.size)
		want, err := proto.Marshal(batchMessage(data, tc.rows))
		require.NoError(t, err)
		require.Equal(t, want, wire, "size %d rows %d", tc.size, tc.rows)
		w.release()
	}
}

// A region is kept for reuse after an ordinary group (~1 MB), not after one
// that wrote more of it (its pages would stay memory) or outgrew it.
func TestOnlyOrdinaryRegionsKept(t *testing.T) {
	for len(regions) > 0 {
		freeRegion(<-regions)
	}
	for _, tc := range []struct {
		written int
		kept    bool
	}{{1 << 20, true}, {keptWritten + 1, false}, {regionSize + 1, false}} {
		w := newWireBuffer()
		first := &w.region[:1][0]
		w.buf.Write(make([]byte, tc.written))
		w.release()
		require.Equal(t, tc.kept, len(regions) == 1, "%d bytes written", tc.written)
		if tc.kept {
			r := <-regions
			require.Same(t, first, &r[:1][0])
			freeRegion(r)
		}
	}
}

// The codec sends a message being sent with sendWire as its wire form, and
// marshals any other message with protobuf.
func TestCodecUsesWireForm(t *testing.T) {
	c := Codec()
	w := newWireBuffer()
	defer w.release()
	w.buf.WriteString("arrow bytes")
	wire, ipc := w.message(3)
	msg := batchMessage(ipc, 3)
	var got []byte
	require.NoError(t, sendWire(func(m *agnesv1.QueryStreamResponse) error {
		var err error
		got, err = c.Marshal(m)
		return err
	}, msg, wire))
	require.Equal(t, &wire[0], &got[0], "the wire form itself, not a copy")
	again, err := c.Marshal(msg) // after the send: a plain protobuf encoding
	require.NoError(t, err)
	require.NotSame(t, &wire[0], &again[0])
	require.Equal(t, wire, again)
	var back agnesv1.QueryStreamResponse
	require.NoError(t, c.Unmarshal(again, &back))
	require.True(t, proto.Equal(msg, &back))
}

// Wire buffers are reused once sent, which is safe only because connect keeps
// no reference to a buffer of more than 8 MiB that a codec returned (it pools
// smaller ones for its own use). This sends a batch whose wire form is in such
// a buffer and checks, with a weak pointer across one garbage collection (a
// pooled buffer survives one, in the pool's victim cache), that nothing holds
// it any more. The control, a buffer under the limit, shows the test can tell.
func TestConnectDoesNotKeepWireBuffers(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // collect only when told
	want := bytes.Repeat([]byte{0xEE}, 4096)
	wire, err := proto.Marshal(batchMessage(want, 1))
	require.NoError(t, err)
	kept := func(capacity int) bool {
		var ref weak.Pointer[byte]
		mux := http.NewServeMux()
		mux.Handle(agnesv1connect.NewQueryServiceHandler(&wireSender{send: func(s *connect.ServerStream[agnesv1.QueryStreamResponse]) error {
			buf := make([]byte, len(wire), capacity)
			copy(buf, wire)
			ref = weak.Make(&buf[0])
			var msg agnesv1.QueryStreamResponse
			if err := proto.Unmarshal(wire, &msg); err != nil {
				return err
			}
			return sendWire(s.Send, &msg, buf)
		}}, connect.WithCodec(Codec())))
		srv := httptest.NewServer(mux)
		client := agnesv1connect.NewQueryServiceClient(srv.Client(), srv.URL)
		stream, err := client.QueryStream(context.Background(), &agnesv1.QueryStreamRequest{Sql: "SELECT 1"})
		require.NoError(t, err)
		for stream.Receive() {
			require.Equal(t, want, stream.Msg().GetBatch().GetArrowBatch())
		}
		require.NoError(t, stream.Err())
		require.NoError(t, stream.Close())
		srv.Close()
		runtime.GC()
		alive := ref.Value() != nil
		runtime.KeepAlive(mux) // and with it connect's pool
		return alive
	}
	// The race detector makes sync.Pool drop a quarter of what it is given.
	control := false
	for range 10 {
		if control = kept(1 << 20); control {
			break
		}
	}
	require.True(t, control, "control: connect no longer keeps a 1 MiB buffer from a codec; this test cannot tell any more")
	require.False(t, kept(regionSize), "connect kept a %d-byte buffer from the codec: wire buffers must not be reused (see wire.go)", regionSize)
}

type wireSender struct {
	agnesv1connect.UnimplementedQueryServiceHandler
	send func(*connect.ServerStream[agnesv1.QueryStreamResponse]) error
}

func (w *wireSender) QueryStream(_ context.Context, _ *agnesv1.QueryStreamRequest, s *connect.ServerStream[agnesv1.QueryStreamResponse]) error {
	return w.send(s)
}

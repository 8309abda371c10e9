//! Any `:authority` over a unix socket. gRPC clients built on the C core
//! (Python grpcio, Ruby, C++), grpc-java and grpcurl send the socket's path
//! as the HTTP/2 `:authority` of a unix socket call; the HTTP/2 server under
//! tonic refuses such a request (RST_STREAM PROTOCOL_ERROR) because a path is
//! no URI authority. A socket has no host to name, so podstart reads the
//! client's side of each unix connection through `LocalAuthority`: it
//! follows the HTTP/2 frames, decodes every header block (HPACK), and when
//! an `:authority` is not a valid authority it replaces it with
//! `localhost` (what grpc-go and Kubernetes send). From that block on the
//! connection's header blocks are re-encoded without the dynamic table, so
//! the server's table never depends on entries it was not shown. Other
//! frames pass through untouched; what the server writes is not looked at.
use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf, BufMut, BytesMut};
use loona_hpack::Decoder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection preface (RFC 9113 §3.4).
const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The frame size every HTTP/2 peer accepts (SETTINGS_MAX_FRAME_SIZE's
/// initial value): re-encoded blocks are cut into frames of at most this.
const MAX_FRAME: usize = 16_384;
/// The largest header block (all its frames) read; a larger one ends the
/// connection. gRPC metadata is far smaller.
pub const MAX_HEADER_BLOCK: usize = 1 << 20;
/// What replaces an `:authority` that is not one.
const LOCAL: &[u8] = b"localhost";

#[derive(Debug)]
enum Stage {
    /// The connection preface, this many bytes still to come.
    Preface(usize),
    /// At a frame boundary.
    Frame,
    /// Inside a frame that passes through: this many payload bytes left.
    Through(usize),
}

/// A header block being collected: its frames as received, and the block
/// fragment they carry.
#[derive(Debug)]
struct Block {
    stream: u32,
    /// END_STREAM on the HEADERS frame.
    end_stream: bool,
    /// The HEADERS frame's priority fields, when it had them.
    priority: Option<[u8; 5]>,
    raw: BytesMut,
    fragment: BytesMut,
}

/// The client side of a unix socket connection, with its `:authority`
/// made acceptable (see the module doc). Writes pass straight through.
pub struct LocalAuthority<T> {
    inner: T,
    stage: Stage,
    /// Read from the socket, not yet looked at.
    input: BytesMut,
    /// Looked at, for the server to read.
    output: BytesMut,
    block: Option<Block>,
    decoder: Decoder<'static>,
    /// A block was rewritten: every later one is re-encoded.
    rewriting: bool,
    eof: bool,
}

impl<T> std::fmt::Debug for LocalAuthority<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAuthority")
            .field("stage", &self.stage)
            .field("rewriting", &self.rewriting)
            .finish_non_exhaustive()
    }
}

impl<T> LocalAuthority<T> {
    pub fn new(inner: T) -> LocalAuthority<T> {
        LocalAuthority {
            inner,
            stage: Stage::Preface(PREFACE_LEN),
            input: BytesMut::new(),
            output: BytesMut::new(),
            block: None,
            decoder: Decoder::new(),
            rewriting: false,
            eof: false,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Moves what `input` holds to `output`, frame by frame, as far as it
    /// goes.
    fn process(&mut self) -> io::Result<()> {
        loop {
            match self.stage {
                Stage::Preface(left) | Stage::Through(left) if left > 0 => {
                    let n = left.min(self.input.len());
                    if n == 0 {
                        return Ok(());
                    }
                    self.output.put(self.input.split_to(n));
                    self.stage = match self.stage {
                        Stage::Preface(_) if n == left => Stage::Frame,
                        Stage::Preface(_) => Stage::Preface(left - n),
                        _ if n == left => Stage::Frame,
                        _ => Stage::Through(left - n),
                    };
                }
                Stage::Preface(_) | Stage::Through(_) => self.stage = Stage::Frame,
                Stage::Frame => {
                    if self.input.len() < FRAME_HEADER_LEN {
                        return Ok(());
                    }
                    let h = &self.input[..FRAME_HEADER_LEN];
                    let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                    let (kind, flags) = (h[3], h[4]);
                    let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
                    let in_block = self.block.is_some();
                    if kind != HEADERS && !(kind == CONTINUATION && in_block) {
                        // Not part of a header block: a block left open
                        // is the server's to refuse, as received.
                        self.flush_block();
                        self.output.put(self.input.split_to(FRAME_HEADER_LEN));
                        self.stage = Stage::Through(len);
                        continue;
                    }
                    if self.block.as_ref().map_or(0, |b| b.raw.len()) + len > MAX_HEADER_BLOCK {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("an HTTP/2 header block over {MAX_HEADER_BLOCK} bytes"),
                        ));
                    }
                    if self.input.len() < FRAME_HEADER_LEN + len {
                        self.input
                            .reserve(FRAME_HEADER_LEN + len - self.input.len());
                        return Ok(());
                    }
                    let frame = self.input.split_to(FRAME_HEADER_LEN + len);
                    self.take_block_frame(frame, kind, flags, stream)?;
                }
            }
        }
    }

    /// One HEADERS or CONTINUATION frame of a header block.
    fn take_block_frame(
        &mut self,
        frame: BytesMut,
        kind: u8,
        flags: u8,
        stream: u32,
    ) -> io::Result<()> {
        let malformed = || io::Error::new(io::ErrorKind::InvalidData, "malformed HEADERS frame");
        if kind == HEADERS {
            self.flush_block();
            let mut payload = &frame[FRAME_HEADER_LEN..];
            let mut pad = 0;
            if flags & PADDED != 0 {
                pad = usize::from(*payload.first().ok_or_else(malformed)?);
                payload = &payload[1..];
            }
            let mut priority = None;
            if flags & PRIORITY != 0 {
                let p: [u8; 5] = payload
                    .get(..5)
                    .ok_or_else(malformed)?
                    .try_into()
                    .unwrap_or_default();
                priority = Some(p);
                payload = &payload[5..];
            }
            let fragment = payload.get(..payload.len().checked_sub(pad).ok_or_else(malformed)?);
            let fragment = BytesMut::from(fragment.ok_or_else(malformed)?);
            self.block = Some(Block {
                stream,
                end_stream: flags & END_STREAM != 0,
                priority,
                raw: frame,
                fragment,
            });
        } else if let Some(block) = &mut self.block {
            block.fragment.extend_from_slice(&frame[FRAME_HEADER_LEN..]);
            block.raw.unsplit(frame);
        }
        if flags & END_HEADERS != 0 {
            self.finish_block()?;
        }
        Ok(())
    }

    /// A whole header block: decoded (the decoder follows the client's
    /// table), then passed on as it came or re-encoded.
    fn finish_block(&mut self) -> io::Result<()> {
        let Some(block) = self.block.take() else {
            return Ok(());
        };
        let mut fields = Vec::new();
        self.decoder
            .decode_with_cb(&block.fragment, |n, v| {
                fields.push((n.into_owned(), v.into_owned()));
            })
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("HPACK: {e:?}")))?;
        for (name, value) in &mut fields {
            if name.as_slice() == b":authority" && !is_authority(value) {
                *value = LOCAL.to_vec();
                self.rewriting = true;
            }
        }
        if !self.rewriting {
            self.output.put(block.raw);
            return Ok(());
        }
        let mut encoded = BytesMut::new();
        for (name, value) in &fields {
            encode_literal(&mut encoded, name, value);
        }
        self.put_block(&block, encoded);
        Ok(())
    }

    /// A header block as HEADERS and, past `MAX_FRAME`, CONTINUATION frames.
    fn put_block(&mut self, block: &Block, mut encoded: BytesMut) {
        let mut first = true;
        loop {
            let room = MAX_FRAME
                - if first && block.priority.is_some() {
                    5
                } else {
                    0
                };
            let chunk = encoded.split_to(room.min(encoded.len()));
            let last = encoded.is_empty();
            let mut flags = if last { END_HEADERS } else { 0 };
            let kind = if first {
                if block.end_stream {
                    flags |= END_STREAM;
                }
                if block.priority.is_some() {
                    flags |= PRIORITY;
                }
                HEADERS
            } else {
                CONTINUATION
            };
            let prio = if first { block.priority } else { None };
            let len = chunk.len() + prio.map_or(0, |p| p.len());
            self.output.put_uint(len as u64, 3);
            self.output.put_u8(kind);
            self.output.put_u8(flags);
            self.output.put_u32(block.stream);
            if let Some(p) = prio {
                self.output.put_slice(&p);
            }
            self.output.put(chunk);
            first = false;
            if last {
                return;
            }
        }
    }

    /// A block cut short by another frame goes on as received.
    fn flush_block(&mut self) {
        if let Some(block) = self.block.take() {
            self.output.put(block.raw);
        }
    }
}

/// Whether the HTTP/2 server takes `value` as an `:authority`.
fn is_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// A header field as a literal without indexing, with a literal name
/// (RFC 7541 §6.2.2): the server's dynamic table stays empty.
fn encode_literal(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_u8(0);
    encode_string(out, name);
    encode_string(out, value);
}

/// A string literal without Huffman coding: a 7-bit prefix length, then
/// the bytes (RFC 7541 §5.1, §5.2).
fn encode_string(out: &mut BytesMut, s: &[u8]) {
    let mut n = s.len();
    if n < 127 {
        out.put_u8(n as u8);
    } else {
        out.put_u8(127);
        n -= 127;
        while n >= 128 {
            out.put_u8((n % 128) as u8 | 0x80);
            n /= 128;
        }
        out.put_u8(n as u8);
    }
    out.put_slice(s);
}

impl<T: AsyncRead + Unpin> AsyncRead for LocalAuthority<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.output.is_empty() {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output[..n]);
                this.output.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            // Inside a frame that passes through, with nothing buffered:
            // straight into the server's buffer.
            if let Stage::Through(left) = this.stage
                && left > 0
                && this.input.is_empty()
            {
                let k = left.min(buf.remaining());
                let mut direct = ReadBuf::new(buf.initialize_unfilled_to(k));
                std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut direct))?;
                let n = direct.filled().len();
                if n == 0 {
                    this.eof = true;
                    return Poll::Ready(Ok(()));
                }
                buf.advance(n);
                this.stage = Stage::Through(left - n);
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut chunk);
            std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                this.eof = true;
                // What is left unprocessed goes as it is: the server sees
                // the truncated frame and ends the connection.
                this.flush_block();
                let rest = this.input.split();
                this.output.put(rest);
                continue;
            }
            this.input.extend_from_slice(rb.filled());
            this.process()?;
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for LocalAuthority<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        f.extend_from_slice(&[kind, flags]);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// A literal with incremental indexing and a literal name: the client
    /// adds it to its dynamic table (and so must whoever decodes).
    fn indexed_literal(name: &[u8], value: &[u8]) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_u8(0x40);
        encode_string(&mut b, name);
        encode_string(&mut b, value);
        b.to_vec()
    }

    /// Runs `input` through `LocalAuthority`, fed in pieces of `step`
    /// bytes, and returns what the server reads.
    async fn through(input: Vec<u8>, step: usize) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let feed = tokio::spawn(async move {
            for piece in input.chunks(step) {
                client.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let mut out = Vec::new();
        let mut reader = LocalAuthority::new(server);
        let read = reader.read_to_end(&mut out);
        let (_, r) = tokio::join!(feed, read);
        r.unwrap();
        out
    }

    /// The frames after the preface, each as (kind, flags, stream, payload).
    fn frames(mut bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        assert_eq!(&bytes[..PREFACE_LEN], PREFACE);
        bytes = &bytes[PREFACE_LEN..];
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let len =
                usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
            let stream = u32::from_be_bytes(bytes[5..9].try_into().unwrap());
            out.push((bytes[3], bytes[4], stream, bytes[9..9 + len].to_vec()));
            bytes = &bytes[9 + len..];
        }
        out
    }

    /// Decodes the header blocks of `frames` in order, as the server does.
    fn blocks(frames: &[(u8, u8, u32, Vec<u8>)]) -> Vec<Vec<(String, String)>> {
        let mut decoder = Decoder::new();
        let mut out = Vec::new();
        let mut fragment = Vec::new();
        for (kind, flags, _, payload) in frames {
            if *kind != HEADERS && *kind != CONTINUATION {
                continue;
            }
            let skip = if flags & PRIORITY != 0 { 5 } else { 0 };
            fragment.extend_from_slice(&payload[skip..]);
            if flags & END_HEADERS != 0 {
                let fields = decoder.decode(&fragment).unwrap();
                out.push(
                    fields
                        .into_iter()
                        .map(|(n, v)| {
                            (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap())
                        })
                        .collect(),
                );
                fragment.clear();
            }
        }
        out
    }

    fn request(authority: &[u8]) -> Vec<u8> {
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        // Stream 1: the authority and a field the client indexes.
        let mut block = indexed_literal(b":authority", authority);
        block.extend(indexed_literal(b"x-trace", "abc".as_bytes()));
        input.extend(frame(HEADERS, END_HEADERS, 1, &block));
        input.extend(frame(0x0, END_STREAM, 1, b"hello body")); // DATA
        // Stream 3 refers to both entries of the client's dynamic table
        // (62: the latest, x-trace; 63: :authority).
        input.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            3,
            &[0x80 | 62, 0x80 | 63],
        ));
        input
    }

    #[tokio::test]
    async fn a_socket_path_as_authority_becomes_localhost_and_later_blocks_still_decode() {
        for step in [1, 7, 1 << 16] {
            let out = through(request(b"/run/podstart/podstart.sock"), step).await;
            let frames = frames(&out);
            let blocks = blocks(&frames);
            let want = |a: &str| {
                vec![
                    (":authority".to_string(), a.to_string()),
                    ("x-trace".to_string(), "abc".to_string()),
                ]
            };
            assert_eq!(blocks[0], want("localhost"), "step {step}");
            // Same fields, in the client's table order.
            assert_eq!(
                blocks[1],
                vec![
                    ("x-trace".to_string(), "abc".to_string()),
                    (":authority".to_string(), "localhost".to_string()),
                ],
                "step {step}"
            );
            let data: Vec<_> = frames.iter().filter(|f| f.0 == 0).collect();
            assert_eq!(data.len(), 1);
            assert_eq!(data[0].3, b"hello body");
            assert_eq!(data[0].1, END_STREAM);
            // Flags kept: END_STREAM on stream 3's HEADERS.
            let h3 = frames.iter().find(|f| f.0 == HEADERS && f.2 == 3).unwrap();
            assert_eq!(h3.1 & END_STREAM, END_STREAM);
        }
    }

    #[tokio::test]
    async fn a_valid_authority_passes_byte_for_byte() {
        let input = request(b"localhost:50051");
        assert_eq!(through(input.clone(), 5).await, input);
    }

    #[tokio::test]
    async fn padding_and_priority_are_understood_and_large_blocks_are_split() {
        let mut input = PREFACE.to_vec();
        let mut block = indexed_literal(b":authority", b"/s.sock");
        let big = "v".repeat(40_000);
        block.extend(indexed_literal(b"x-big", big.as_bytes()));
        // PADDED (pad length 3) and PRIORITY (5 bytes), then the block cut
        // in two frames.
        let (a, b) = block.split_at(100);
        let mut first = vec![3u8];
        first.extend_from_slice(&[0, 0, 0, 0, 16]);
        first.extend_from_slice(a);
        first.extend_from_slice(&[0, 0, 0]);
        input.extend(frame(HEADERS, PADDED | PRIORITY | END_STREAM, 5, &first));
        input.extend(frame(CONTINUATION, END_HEADERS, 5, b));
        let frames = frames(&through(input, 4096).await);
        assert!(
            frames.len() >= 3,
            "40 kB is cut into frames of at most 16 kB"
        );
        assert!(frames.iter().all(|f| f.3.len() <= MAX_FRAME));
        assert_eq!(frames[0].0, HEADERS);
        assert_eq!(frames[0].1, PRIORITY | END_STREAM);
        assert_eq!(&frames[0].3[..5], &[0, 0, 0, 0, 16]);
        assert!(frames[1..].iter().all(|f| f.0 == CONTINUATION && f.2 == 5));
        assert_eq!(frames.last().unwrap().1, END_HEADERS);
        let blocks = blocks(&frames);
        assert_eq!(blocks[0][0].1, "localhost");
        assert_eq!(blocks[0][1].1, big);
    }

    #[tokio::test]
    async fn an_oversized_header_block_ends_the_connection() {
        let mut input = PREFACE.to_vec();
        let chunk = vec![0u8; MAX_FRAME];
        input.extend(frame(HEADERS, 0, 1, &chunk));
        for _ in 0..(MAX_HEADER_BLOCK / MAX_FRAME) {
            input.extend(frame(CONTINUATION, 0, 1, &chunk));
        }
        let (mut client, server) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move { client.write_all(&input).await });
        let mut out = Vec::new();
        let err = LocalAuthority::new(server)
            .read_to_end(&mut out)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn string_lengths_use_the_seven_bit_prefix() {
        for (len, want) in [
            (10usize, vec![10u8]),
            (127, vec![127, 0]),
            (300, vec![127, 173, 1]),
        ] {
            let mut b = BytesMut::new();
            encode_string(&mut b, &vec![b'a'; len]);
            assert_eq!(&b[..want.len()], want.as_slice(), "{len}");
            assert_eq!(b.len(), want.len() + len);
        }
    }
}

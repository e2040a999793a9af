//! Writing a queue of byte chunks to a stream: one vectored write of its
//! front, and dropping what was written. Shared by [`crate::WebSocket`]'s
//! writer and the [`crate::Outbox`].

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::AsyncWrite;

/// The most chunks handed to one vectored write.
const MAX_IOVECS: usize = 64;

/// One write of the front of `chunks` (vectored when there are several).
/// The slices are built on the stack in each poll: nothing is allocated per
/// write, and nothing enlarges the caller's future.
pub(crate) fn poll_write_front<W: AsyncWrite + ?Sized>(
    io: Pin<&mut W>,
    cx: &mut Context<'_>,
    chunks: &VecDeque<Bytes>,
) -> Poll<io::Result<usize>> {
    if chunks.len() == 1 {
        return io.poll_write(cx, &chunks[0]);
    }
    let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
    let count = chunks.len().min(MAX_IOVECS);
    for (slice, chunk) in slices.iter_mut().zip(chunks.iter()) {
        *slice = IoSlice::new(chunk);
    }
    io.poll_write_vectored(cx, &slices[..count])
}

/// Drops `written` bytes from the front of `chunks`; returns whether the
/// front chunk is now partly written.
pub(crate) fn advance(chunks: &mut VecDeque<Bytes>, written: usize) -> bool {
    let mut left = written;
    let mut partly = false;
    while left > 0 {
        let Some(front) = chunks.front_mut() else {
            break;
        };
        if front.len() <= left {
            left -= front.len();
            chunks.pop_front();
            partly = false;
        } else {
            front.advance(left);
            left = 0;
            partly = true;
        }
    }
    partly
}

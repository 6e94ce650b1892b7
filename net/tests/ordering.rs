//! Per-session ordering with pipelined requests, on raw frames.
//!
//! The story of the first test: a session that pipelined
//! `setData, getData, setData` could have both writes land in one
//! group-committed batch. The core replied to the first write, then met the
//! second write's reply with the read still queued between them, and the
//! server panicked (caught by the mixed load-generator workload). Each
//! queued read must be answered right after the write ahead of it, from the
//! tree as of that write: it sees the first write and not the second.

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::raw::{frame, put_str, read_frame, session};
use common::Server;

fn create(xid: i32, path: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    put_str(&mut b, path.as_bytes());
    put_str(&mut b, b"0");
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&31i32.to_be_bytes());
    put_str(&mut b, b"world");
    put_str(&mut b, b"anyone");
    b.extend_from_slice(&0i32.to_be_bytes());
    frame(&b)
}

fn set_data(xid: i32, path: &str, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(&5i32.to_be_bytes());
    put_str(&mut b, path.as_bytes());
    put_str(&mut b, data);
    b.extend_from_slice(&(-1i32).to_be_bytes());
    frame(&b)
}

fn get_data(xid: i32, path: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(&4i32.to_be_bytes());
    put_str(&mut b, path.as_bytes());
    b.push(0);
    frame(&b)
}

/// (xid, err, body after the header)
fn reply(s: &mut TcpStream) -> (i32, i32, Vec<u8>) {
    let f = read_frame(s);
    let xid = i32::from_be_bytes(f[0..4].try_into().unwrap());
    let err = i32::from_be_bytes(f[12..16].try_into().unwrap());
    (xid, err, f[16..].to_vec())
}

fn data_of(body: &[u8]) -> Vec<u8> {
    let n = i32::from_be_bytes(body[0..4].try_into().unwrap()) as usize;
    body[4..4 + n].to_vec()
}

#[test]
fn reads_between_pipelined_writes_see_exactly_the_writes_before_them() {
    let server = Server::start(&[]);
    let mut s = session(&server);
    s.write_all(&create(1, "/p")).unwrap();
    assert_eq!(reply(&mut s).1, 0);
    for round in 0..200 {
        let mut burst = Vec::new();
        let base = 10 + round * 10;
        for i in 0..4 {
            let v = format!("{round}-{i}");
            burst.extend_from_slice(&set_data(base + 2 * i, "/p", v.as_bytes()));
            burst.extend_from_slice(&get_data(base + 2 * i + 1, "/p"));
        }
        s.write_all(&burst).unwrap();
        for i in 0..4 {
            let (xid, err, _) = reply(&mut s);
            assert_eq!((xid, err), (base + 2 * i, 0), "setData reply in order");
            let (xid, err, body) = reply(&mut s);
            assert_eq!((xid, err), (base + 2 * i + 1, 0), "getData reply in order");
            assert_eq!(
                String::from_utf8(data_of(&body)).unwrap(),
                format!("{round}-{i}"),
                "the read sees the write before it and not the one after"
            );
        }
    }
}

/// The story: with sessions on different cores, a session could read a value
/// older than one another session had already been acknowledged for — its
/// core had not yet applied the batch. A standalone ZooKeeper never does
/// that, and clients (and their tests) rely on it. A read now waits while
/// its core is behind the last durable batch.
#[test]
fn a_read_sees_every_write_acknowledged_before_it_on_any_core() {
    let server = Server::start(&[]);
    // Several sessions, so that some land on each core.
    let mut sessions: Vec<TcpStream> = (0..6).map(|_| session(&server)).collect();
    sessions[0].write_all(&create(1, "/rw")).unwrap();
    assert_eq!(reply(&mut sessions[0]).1, 0);
    let n = sessions.len();
    for i in 0..300i32 {
        let w = (i as usize) % n;
        let r = (i as usize * 7 + 3) % n;
        let value = format!("v{i}");
        sessions[w]
            .write_all(&set_data(100 + i, "/rw", value.as_bytes()))
            .unwrap();
        let (_, err, _) = reply(&mut sessions[w]);
        assert_eq!(err, 0);
        sessions[r].write_all(&get_data(100 + i, "/rw")).unwrap();
        let (_, err, body) = reply(&mut sessions[r]);
        assert_eq!(err, 0);
        assert_eq!(
            String::from_utf8(data_of(&body)).unwrap(),
            value,
            "round {i}"
        );
    }
}

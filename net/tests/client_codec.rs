//! The client's codec and the server's are mirror images: every request
//! the client crate encodes decodes, in `net::proto`, to the operation it
//! was built from, and every reply the server encodes decodes, in
//! `client::codec`, to the response it was built from. Pure: no sockets.

use bytes::Bytes;
use client::codec::{self, ConnectRequest, Request};
use engine::op::{MultiReadResult, MultiResult, ReadOp, Response, WriteOp};
use engine::types::{opcode, Acl, AddWatchMode, ErrorCode, EventType, Id, Stat, WatcherType};
use net::proto;

fn stat(n: i64) -> Stat {
    Stat {
        czxid: n,
        mzxid: n + 1,
        ctime: 1_700_000_000_000 + n,
        mtime: 1_700_000_000_001 + n,
        version: 3,
        cversion: 4,
        aversion: 5,
        ephemeral_owner: -n,
        data_length: 6,
        num_children: 7,
        pzxid: n + 2,
    }
}

fn requests() -> Vec<Request> {
    let acl = vec![
        Acl::world_all(),
        Acl {
            perms: 1,
            id: Id::new("digest", "u:h"),
        },
    ];
    let create = |code, flags, ttl| WriteOp::Create {
        opcode: code,
        path: "/a/b".into(),
        data: Some(Bytes::from_static(b"data")),
        acl: acl.clone(),
        flags,
        ttl,
    };
    vec![
        Request::Write(create(opcode::CREATE, 0, -1)),
        Request::Write(create(opcode::CREATE2, 3, -1)),
        Request::Write(create(opcode::CREATE_CONTAINER, 4, -1)),
        Request::Write(create(opcode::CREATE_TTL, 5, 60_000)),
        Request::Write(WriteOp::Create {
            opcode: opcode::CREATE,
            path: "/null".into(),
            data: None,
            acl: acl.clone(),
            flags: 0,
            ttl: -1,
        }),
        Request::Write(WriteOp::Delete {
            path: "/d".into(),
            version: 9,
        }),
        Request::Write(WriteOp::SetData {
            path: "/s".into(),
            data: Some(Bytes::from_static(b"x")),
            version: -1,
        }),
        Request::Write(WriteOp::SetAcl {
            path: "/s".into(),
            acl: acl.clone(),
            version: 2,
        }),
        Request::Write(WriteOp::Multi(vec![
            create(opcode::CREATE, 1, -1),
            WriteOp::Check {
                path: "/c".into(),
                version: 1,
            },
            WriteOp::SetData {
                path: "/s".into(),
                data: Some(Bytes::from_static(b"y")),
                version: 0,
            },
            WriteOp::Delete {
                path: "/d".into(),
                version: -1,
            },
        ])),
        Request::Write(WriteOp::CloseSession),
        Request::Read(ReadOp::Exists {
            path: "/e".into(),
            watch: true,
        }),
        Request::Read(ReadOp::GetData {
            path: "/g".into(),
            watch: false,
        }),
        Request::Read(ReadOp::GetAcl { path: "/g".into() }),
        Request::Read(ReadOp::GetChildren {
            path: "/".into(),
            watch: true,
            with_stat: false,
        }),
        Request::Read(ReadOp::GetChildren {
            path: "/".into(),
            watch: false,
            with_stat: true,
        }),
        Request::Read(ReadOp::GetAllChildrenNumber { path: "/".into() }),
        Request::Read(ReadOp::GetEphemerals {
            prefix: "/p".into(),
        }),
        Request::Read(ReadOp::MultiRead(vec![
            ReadOp::GetData {
                path: "/g".into(),
                watch: false,
            },
            ReadOp::GetChildren {
                path: "/".into(),
                watch: false,
                with_stat: false,
            },
        ])),
        Request::Read(ReadOp::CheckWatches {
            path: "/w".into(),
            kind: WatcherType::Data,
        }),
        Request::Read(ReadOp::RemoveWatches {
            path: "/w".into(),
            kind: WatcherType::Any,
        }),
        Request::Read(ReadOp::AddWatch {
            path: "/w".into(),
            mode: AddWatchMode::PersistentRecursive,
        }),
        Request::Read(ReadOp::SetWatches {
            relative_zxid: 77,
            data: vec!["/d".into()],
            exist: vec!["/e".into()],
            child: vec!["/c".into()],
            persistent: vec![],
            persistent_recursive: vec![],
        }),
        Request::Read(ReadOp::SetWatches {
            relative_zxid: 78,
            data: vec![],
            exist: vec![],
            child: vec![],
            persistent: vec!["/p".into()],
            persistent_recursive: vec!["/r".into()],
        }),
        Request::Read(ReadOp::WhoAmI),
        Request::Sync("/s".into()),
        Request::Ping,
        Request::Auth {
            scheme: "digest".into(),
            auth: Bytes::from_static(b"u:p"),
        },
    ]
}

#[test]
fn every_client_request_decodes_on_the_server_as_itself() {
    for (i, req) in requests().into_iter().enumerate() {
        let xid = i as i32 + 1;
        let mut frame = Vec::new();
        codec::encode_request(&mut frame, xid, &req);
        let (start, end) = proto::split_frame(&frame, 1 << 20)
            .unwrap()
            .expect("a whole frame");
        assert_eq!(end, frame.len());
        let decoded = proto::decode_request(Bytes::copy_from_slice(&frame[start..end]))
            .unwrap_or_else(|e| panic!("{req:?}: {e}"));
        assert_eq!(decoded.xid, xid);
        assert_eq!(decoded.opcode, req.opcode(), "{req:?}");
        let expected = match req {
            Request::Write(op) => proto::Request::Write(op),
            Request::Read(op) => proto::Request::Read(op),
            Request::Sync(p) => proto::Request::Sync(p),
            Request::Ping => proto::Request::Ping,
            Request::Auth { scheme, auth } => proto::Request::Auth { scheme, auth },
        };
        assert_eq!(decoded.request, expected);
    }
}

#[test]
fn the_connect_request_decodes_on_the_server() {
    let mut frame = Vec::new();
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0x1_0000_0005,
        timeout_ms: 12_000,
        session_id: 0x77,
        password: Bytes::from_static(&[9u8; 16]),
        read_only: true,
    };
    codec::encode_connect(&mut frame, &req);
    let c = proto::decode_connect(Bytes::copy_from_slice(&frame[4..])).unwrap();
    assert_eq!(
        (c.last_zxid_seen, c.timeout_ms, c.session_id, c.read_only),
        (0x1_0000_0005, 12_000, 0x77, true)
    );
    assert_eq!(c.password, req.password);

    let mut out = Vec::new();
    proto::encode_connect_response(&mut out, 4000, 0x88, &[3u8; 16], false);
    let r = codec::decode_connect_response(Bytes::copy_from_slice(&out[4..])).unwrap();
    assert_eq!(
        (r.timeout_ms, r.session_id, r.read_only),
        (4000, 0x88, false)
    );
    assert_eq!(&r.password[..], &[3u8; 16]);
}

#[test]
fn every_server_reply_decodes_on_the_client_as_itself() {
    let cases: Vec<(i32, Response)> = vec![
        (opcode::CREATE, Response::Path("/a".into())),
        (opcode::CREATE2, Response::PathStat("/a".into(), stat(1))),
        (opcode::CREATE_TTL, Response::PathStat("/t".into(), stat(2))),
        (opcode::EXISTS, Response::Stat(stat(3))),
        (
            opcode::GET_DATA,
            Response::Data(Some(Bytes::from_static(b"v")), stat(4)),
        ),
        (opcode::GET_DATA, Response::Data(None, stat(5))),
        (
            opcode::GET_ACL,
            Response::Acl(vec![Acl::world_all()], stat(6)),
        ),
        (
            opcode::GET_CHILDREN,
            Response::Children(vec!["a".into(), "b".into()]),
        ),
        (
            opcode::GET_CHILDREN2,
            Response::Children2(vec!["c".into()], stat(7)),
        ),
        (opcode::GET_ALL_CHILDREN_NUMBER, Response::Number(42)),
        (
            opcode::GET_EPHEMERALS,
            Response::Strings(vec!["/e1".into(), "/e2".into()]),
        ),
        (
            opcode::WHO_AM_I,
            Response::WhoAmI(vec![("ip".into(), "127.0.0.1".into())]),
        ),
        (
            opcode::MULTI,
            Response::Multi(vec![
                MultiResult::Create("/m".into()),
                MultiResult::Create2("/m2".into(), stat(8)),
                MultiResult::Delete,
                MultiResult::SetData(stat(9)),
                MultiResult::Check,
                MultiResult::Error(ErrorCode::BadVersion),
            ]),
        ),
        (
            opcode::MULTI_READ,
            Response::MultiRead(vec![
                MultiReadResult::Children(vec!["x".into()]),
                MultiReadResult::Data(Some(Bytes::from_static(b"d")), stat(10)),
                MultiReadResult::Error(ErrorCode::NoNode),
            ]),
        ),
        (opcode::SYNC, Response::Path("/s".into())),
        (opcode::DELETE, Response::Empty),
    ];
    for (code, resp) in cases {
        let mut out = Vec::new();
        proto::encode_reply(&mut out, 5, 0x99, &Ok(resp.clone()), 1 << 20);
        let n = codec::split_frame(&out, 1 << 20).unwrap().unwrap();
        assert_eq!(n, out.len());
        let (header, record) =
            codec::decode_reply_header(Bytes::copy_from_slice(&out[4..])).unwrap();
        assert_eq!((header.xid, header.zxid, header.err), (5, 0x99, 0));
        assert_eq!(codec::decode_response(code, record).unwrap(), resp);
    }
    let mut out = Vec::new();
    proto::encode_reply(&mut out, 6, 7, &Err(ErrorCode::NoAuth), 1 << 20);
    let (header, _) = codec::decode_reply_header(Bytes::copy_from_slice(&out[4..])).unwrap();
    assert_eq!(codec::error_code(header.err), ErrorCode::NoAuth);
}

#[test]
fn watch_events_decode_on_the_client() {
    let mut out = Vec::new();
    proto::encode_event(&mut out, EventType::NodeChildrenChanged, 3, "/p");
    let (header, record) = codec::decode_reply_header(Bytes::copy_from_slice(&out[4..])).unwrap();
    assert_eq!(header.xid, codec::XID_NOTIFICATION);
    let e = codec::decode_event(record).unwrap();
    assert_eq!(
        (e.event_type, e.state, e.path.as_str()),
        (EventType::NodeChildrenChanged as i32, 3, "/p")
    );
}

//! The testkit's own promises, on which every suite's fault tests rest: a cut proxy refuses
//! and closes, a restored one forwards on the same port, a paused one holds requests back,
//! and a test schema is where its URL points and is gone once dropped.

use std::time::Duration;

use keywarden_testkit::{TcpProxy, TestSchema, postgres_url, socket_of, via_port};
use sqlx::{Connection, Row};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A server that echoes what it reads, on a free port.
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    address
}

/// Sends `message` and waits up to `patience` for its echo.
async fn echo(stream: &mut TcpStream, message: &[u8], patience: Duration) -> Option<Vec<u8>> {
    stream.write_all(message).await.ok()?;
    let mut reply = vec![0; message.len()];
    tokio::time::timeout(patience, stream.read_exact(&mut reply))
        .await
        .ok()?
        .ok()?;
    Some(reply)
}

#[tokio::test]
async fn a_cut_proxy_closes_and_refuses_until_restored_on_the_same_port() {
    let mut proxy = TcpProxy::start(echo_server().await).await;
    let address = ("127.0.0.1", proxy.port());
    let mut before = TcpStream::connect(address).await.unwrap();
    assert_eq!(
        echo(&mut before, b"ping", Duration::from_secs(5)).await,
        Some(b"ping".to_vec())
    );

    proxy.cut().await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), before.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "an open connection is closed: {closed:?}"
    );
    let refused = TcpStream::connect(address).await;
    assert_eq!(
        refused.map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );

    proxy.restore();
    let mut after = TcpStream::connect(address).await.unwrap();
    assert_eq!(
        echo(&mut after, b"back", Duration::from_secs(5)).await,
        Some(b"back".to_vec())
    );
}

#[tokio::test]
async fn a_paused_proxy_holds_requests_back_and_passes_them_on_when_resumed() {
    let proxy = TcpProxy::start(echo_server().await).await;
    let mut stream = TcpStream::connect(("127.0.0.1", proxy.port()))
        .await
        .unwrap();

    proxy.pause();
    assert_eq!(
        echo(&mut stream, b"held", Duration::from_millis(200)).await,
        None
    );
    proxy.resume();
    let mut reply = [0; 4];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&reply, b"held");
}

#[tokio::test]
async fn a_schema_is_where_its_url_points_and_is_dropped_with_the_guard() {
    let schema = TestSchema::create().await;
    let name = schema.name().to_owned();
    let mut conn = schema.connection().await;
    sqlx::raw_sql("CREATE TABLE here (id int)")
        .execute(&mut conn)
        .await
        .unwrap();
    let table_schema: String = sqlx::query(
        "SELECT table_schema::text FROM information_schema.tables WHERE table_name = 'here' \
         AND table_schema = $1",
    )
    .bind(&name)
    .fetch_one(&mut conn)
    .await
    .unwrap()
    .get(0);
    assert_eq!(table_schema, name);
    conn.close().await.unwrap();

    // Through a proxy, the same schema.
    let proxy = TcpProxy::start(socket_of(&postgres_url())).await;
    let mut proxied =
        sqlx::PgConnection::connect(&schema.url_via(&via_port(&postgres_url(), proxy.port())))
            .await
            .unwrap();
    let search_path: String = sqlx::query("SELECT current_schema()::text")
        .fetch_one(&mut proxied)
        .await
        .unwrap()
        .get(0);
    assert_eq!(search_path, name);
    proxied.close().await.unwrap();

    drop(schema);
    let mut conn = sqlx::PgConnection::connect(&postgres_url()).await.unwrap();
    let left: i64 = sqlx::query("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
        .bind(&name)
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "schema {name} is dropped");
}

# Sourced by the bench scripts: a standalone Apache ZooKeeper 3.8 from
# Debian's package, configured as the Rust driver configures it.
ZK_CP=/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# start_zookeeper DIR PORT: zoo.cfg in DIR, data in DIR/zk, log in
# DIR/zk.log, in the background ($! is its pid).
start_zookeeper() {
  mkdir -p "$1/zk"
  cat > "$1/zoo.cfg" <<CFG
tickTime=2000
dataDir=$1/zk
clientPort=$2
4lw.commands.whitelist=*
admin.enableServer=false
maxClientCnxns=0
forceSync=yes
CFG
  java -Xms2g -Xmx2g -cp "$ZK_CP" org.apache.zookeeper.server.quorum.QuorumPeerMain "$1/zoo.cfg" > "$1/zk.log" 2>&1 &
}

# answers_ruok PORT: waits up to 20 s for `imok` on 127.0.0.1:PORT.
answers_ruok() {
  for _ in $(seq 100); do
    if python3 -c "import socket,sys;s=socket.create_connection(('127.0.0.1',$1));s.sendall(b'ruok');sys.exit(0 if s.recv(4)==b'imok' else 1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}

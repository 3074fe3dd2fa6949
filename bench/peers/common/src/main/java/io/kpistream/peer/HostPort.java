package io.kpistream.peer;

/** A HOST:PORT argument, as both peers' --redis takes it. */
public final class HostPort {
    public final String host;
    public final int port;

    public HostPort(String host, int port) {
        this.host = host;
        this.port = port;
    }

    /** HOST:PORT; the port is what follows the last ':'. */
    public static HostPort parse(String s) {
        int colon = s.lastIndexOf(':');
        if (colon < 0) throw new IllegalArgumentException("expected HOST:PORT, got '" + s + "'");
        return new HostPort(s.substring(0, colon), Integer.parseInt(s.substring(colon + 1)));
    }
}

package io.kpistream.peer;

/** MurmurHash64A, the hash Redis's HyperLogLog uses (seed 0xadc83b19). */
final class Murmur64A {
    private Murmur64A() {}

    static long hash(byte[] key, long seed) {
        final long m = 0xc6a4a7935bd1e995L;
        final int r = 47;
        int len = key.length;
        long h = seed ^ (len * m);
        int i = 0, end = len - (len & 7);
        for (; i < end; i += 8) {
            long k = (key[i] & 0xffL) | (key[i + 1] & 0xffL) << 8 | (key[i + 2] & 0xffL) << 16
                    | (key[i + 3] & 0xffL) << 24 | (key[i + 4] & 0xffL) << 32
                    | (key[i + 5] & 0xffL) << 40 | (key[i + 6] & 0xffL) << 48
                    | (key[i + 7] & 0xffL) << 56;
            k *= m;
            k ^= k >>> r;
            k *= m;
            h ^= k;
            h *= m;
        }
        switch (len & 7) {
            case 7: h ^= (key[i + 6] & 0xffL) << 48;
            case 6: h ^= (key[i + 5] & 0xffL) << 40;
            case 5: h ^= (key[i + 4] & 0xffL) << 32;
            case 4: h ^= (key[i + 3] & 0xffL) << 24;
            case 3: h ^= (key[i + 2] & 0xffL) << 16;
            case 2: h ^= (key[i + 1] & 0xffL) << 8;
            case 1: h ^= (key[i] & 0xffL); h *= m;
            default:
        }
        h ^= h >>> r;
        h *= m;
        h ^= h >>> r;
        return h;
    }
}

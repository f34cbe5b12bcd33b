/* kudp_driver.c -- drives one UDP entry through the kernel's own tracker (kudp_glue.c) the way
 * nf_conntrack_in() does, one command a line on stdin, one JSON line out:
 *   reset                                 fresh netns defaults (the file's own init), no entry
 *   sysctl checksum|udp_timeout|udp_timeout_stream VALUE    (timeouts in seconds)
 *   time MS                               the clock (jiffies, HZ=1000)
 *   clash                                 set IPS_NAT_CLASH on the entry
 *   pkt o|r AVAIL LENFIELD none|good|bad pre|out
 *         a datagram in the original/reply direction: AVAIL bytes after the IP header, the
 *         header's length field, its checksum, the hook.  An expired entry vanishes first; no
 *         entry: a new one (ctinfo NEW); reply direction: ESTABLISHED_REPLY; SEEN_REPLY is set
 *         after an accepted reply and the entry is confirmed after its first accepted packet.
 * Answer: {"verdict", "log", "status" (SEEN_REPLY/ASSURED/CONFIRMED/NAT_CLASH), "timeout"
 * (ms asked for by nf_ct_refresh_acct(), or null), "new"}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kudp_api.h"

static struct nf_conn ct;
static int have;
static unsigned long expires;
static unsigned char buf[64];

static void status_json(char *out, unsigned long s)
{
	static const struct { int bit; const char *name; } names[] = {
		{1, "SEEN_REPLY"}, {2, "ASSURED"}, {3, "CONFIRMED"}, {12, "NAT_CLASH"}};
	strcpy(out, "[");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (s >> names[i].bit & 1) {
			if (out[1]) strcat(out, ",");
			strcat(out, "\""); strcat(out, names[i].name); strcat(out, "\"");
		}
	strcat(out, "]");
}

int main(void)
{
	char line[256];
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		char cmd[32] = "", a[32] = "", csum[16] = "", hook[16] = "";
		unsigned avail = 0, lenf = 0;
		long v = 0;
		sscanf(line, "%31s", cmd);
		if (!strcmp(cmd, "reset")) {
			memset(&kj_net, 0, sizeof(kj_net));
			kj_net.ct.sysctl_checksum = 1;
			kj_net.ct.sysctl_log_invalid = 255;
			kj_init();
			have = 0; jiffies = 0;
			puts("{\"ok\":true}");
		} else if (!strcmp(cmd, "sysctl") && sscanf(line, "%*s %31s %ld", a, &v) == 2) {
			if (!strcmp(a, "checksum")) kj_net.ct.sysctl_checksum = (int)v;
			else if (!strcmp(a, "udp_timeout")) kj_timeouts()[UDP_CT_UNREPLIED] = (unsigned)(v * HZ);
			else if (!strcmp(a, "udp_timeout_stream")) kj_timeouts()[UDP_CT_REPLIED] = (unsigned)(v * HZ);
			else { printf("{\"error\":\"unknown sysctl %s\"}\n", a); continue; }
			puts("{\"ok\":true}");
		} else if (!strcmp(cmd, "time") && sscanf(line, "%*s %ld", &v) == 1) {
			jiffies = (unsigned long)v;
			puts("{\"ok\":true}");
		} else if (!strcmp(cmd, "clash")) {
			ct.status |= IPS_NAT_CLASH;
			puts("{\"ok\":true}");
		} else if (!strcmp(cmd, "pkt") && sscanf(line, "%*s %31s %u %u %15s %15s", a, &avail, &lenf, csum, hook) == 5) {
			unsigned h = strcmp(hook, "pre") ? NF_INET_LOCAL_OUT : NF_INET_PRE_ROUTING;
			int reply = !strcmp(a, "r"), fresh = 0, verdict;
			char st[128];
			memset(buf, 0, sizeof(buf));
			buf[20 + 4] = (unsigned char)(lenf >> 8); buf[20 + 5] = (unsigned char)lenf;
			buf[20 + 6] = strcmp(csum, "none") ? 0x12 : 0;  /* a non-zero checksum field */
			kj_skb.data = buf; kj_skb.len = 20 + avail;
			kj_bad_csum = !strcmp(csum, "bad");
			kj_logbuf[0] = 0; kj_refreshed = -1;
			if (have && time_after(jiffies, expires - 1)) have = 0;  /* nf_ct_is_expired() */
#if defined(KUDP_L310) || defined(KUDP_L419)
			verdict = kj_error(h);
			if (verdict <= 0) {
				status_json(st, have ? ct.status : 0);
				printf("{\"verdict\":%d,\"log\":\"%s\",\"status\":%s,\"timeout\":null,\"new\":false}\n", verdict, kj_logbuf, st);
				continue;
			}
#endif
			if (!have) { memset(&ct, 0, sizeof(ct)); fresh = 1; reply = 0; }
			verdict = kj_packet(&ct, fresh ? IP_CT_NEW : reply ? IP_CT_ESTABLISHED_REPLY
						 : (ct.status & IPS_SEEN_REPLY ? IP_CT_ESTABLISHED : IP_CT_NEW), h);
			if (verdict > 0) {
				if (reply) ct.status |= IPS_SEEN_REPLY;
				ct.status |= IPS_CONFIRMED;
				have = 1;
				if (kj_refreshed >= 0) expires = jiffies + (unsigned long)kj_refreshed;
			}
			status_json(st, have ? ct.status : 0);
			printf("{\"verdict\":%d,\"log\":\"%s\",\"status\":%s,\"timeout\":", verdict, kj_logbuf, st);
			if (kj_refreshed >= 0) printf("%ld", kj_refreshed); else printf("null");
			printf(",\"new\":%s}\n", fresh ? "true" : "false");
		} else {
			printf("{\"error\":\"bad command\"}\n");
		}
	}
	return 0;
}

import t from 'tap';

t.pass('ops placeholder');
